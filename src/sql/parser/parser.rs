//! Turns SQL text into [`ast::Statement`]s: pest parses by the grammar in `chronos.pest`, then
//! the pairs are walked into our own AST. pest types never leave this module.

use super::ast::*;
use crate::sql::error::{Error, Result};
use crate::sql::types::{ArithmeticOp, DataType, Value};
use pest::Parser as _;
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use std::sync::LazyLock;

/// The deepest expression tree accepted. Evaluation and planning recurse over expressions, so
/// this bounds their stack use (SQLite's default limit is also 1000).
pub const MAX_EXPRESSION_DEPTH: usize = 1000;

#[derive(pest_derive::Parser)]
#[grammar = "sql/parser/chronos.pest"]
struct Grammar;

/// Operator precedence, lowest first (PostgreSQL's order).
static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::op_or, Assoc::Left))
        .op(Op::infix(Rule::op_and, Assoc::Left))
        .op(Op::prefix(Rule::op_not))
        .op(Op::postfix(Rule::is_null))
        .op(Op::infix(Rule::op_eq, Assoc::Left)
            | Op::infix(Rule::op_ne, Assoc::Left)
            | Op::infix(Rule::op_lt, Assoc::Left)
            | Op::infix(Rule::op_le, Assoc::Left)
            | Op::infix(Rule::op_gt, Assoc::Left)
            | Op::infix(Rule::op_ge, Assoc::Left))
        .op(Op::postfix(Rule::in_list) | Op::postfix(Rule::between) | Op::postfix(Rule::like))
        .op(Op::infix(Rule::op_concat, Assoc::Left))
        .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
        .op(Op::infix(Rule::op_mul, Assoc::Left)
            | Op::infix(Rule::op_div, Assoc::Left)
            | Op::infix(Rule::op_rem, Assoc::Left))
        .op(Op::prefix(Rule::op_neg) | Op::prefix(Rule::op_pos))
});

/// Parses a script of `;`-separated statements.
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    Ok(parse_spans(sql)?.into_iter().map(|(statement, _)| statement).collect())
}

/// Parses a script into statements, each with the byte range of its text in `sql`.
pub fn parse_spans(sql: &str) -> Result<Vec<(Statement, std::ops::Range<usize>)>> {
    let (text, depth) = prepare(sql)?;
    // pest recurses once per nesting level (a few KiB of stack each in a debug build): make
    // sure that much stack is there, on a new segment if need be.
    let needed = 128 * 1024 + depth * 16 * 1024;
    stacker::maybe_grow(needed, needed * 2, || {
        let mut pairs =
            Grammar::parse(Rule::script, &text).map_err(|error| parse_error(&text, error))?;
        let script = pairs.next().ok_or_else(|| invalid_grammar("script"))?;
        script
            .into_inner()
            .filter(|pair| pair.as_rule() != Rule::EOI)
            .map(|pair| {
                let span = pair.as_span().start()..pair.as_span().end();
                Ok((build_statement(pair)?, span))
            })
            .collect()
    })
}

/// Prepares text for the grammar in one pass: blanks out comments (every other character
/// keeps its line and column), and measures the nesting depth of parentheses and CASE..END,
/// the only constructs the grammar recurses on, refusing input nested deeper than
/// [`MAX_EXPRESSION_DEPTH`] before pest recurses over it.
fn prepare(sql: &str) -> Result<(std::borrow::Cow<'_, str>, usize)> {
    let bytes = sql.as_bytes();
    // Byte ranges of comments.
    let mut comments: Vec<(usize, usize)> = Vec::new();
    let (mut depth, mut max_depth, mut i) = (0usize, 0usize, 0usize);
    let position = |offset: usize| {
        let before = &sql[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    };
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                // A string or quoted identifier; a doubled quote continues it.
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                let end = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
                comments.push((i, end));
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let Some(length) = sql[i + 2..].find("*/") else {
                    let (line, column) = position(i);
                    return Err(Error::Parse {
                        line,
                        column,
                        message: "unterminated /* comment".into(),
                    });
                };
                let end = i + 2 + length + 2;
                comments.push((i, end));
                i = end;
            }
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &sql[start..i];
                if word.eq_ignore_ascii_case("case") {
                    depth += 1;
                } else if word.eq_ignore_ascii_case("end") {
                    depth = depth.saturating_sub(1);
                }
            }
            _ => i += 1,
        }
        if depth > max_depth {
            max_depth = depth;
            if depth > MAX_EXPRESSION_DEPTH {
                let (line, column) = position(i.min(bytes.len()).saturating_sub(1));
                let message =
                    format!("statement is nested too deeply (the limit is {MAX_EXPRESSION_DEPTH})");
                return Err(Error::Parse { line, column, message });
            }
        }
    }
    if comments.is_empty() {
        return Ok((std::borrow::Cow::Borrowed(sql), max_depth));
    }
    // One space per character of each comment (newlines kept), so lines and columns (counted
    // in characters) stay the same.
    let mut text = String::with_capacity(sql.len());
    let mut copied = 0;
    for (start, end) in comments {
        text.push_str(&sql[copied..start]);
        text.extend(sql[start..end].chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
        copied = end;
    }
    text.push_str(&sql[copied..]);
    Ok((std::borrow::Cow::Owned(text), max_depth))
}

/// Parses exactly one statement (trailing `;` allowed).
pub fn parse_statement(sql: &str) -> Result<Statement> {
    let mut statements = parse(sql)?;
    match statements.len() {
        1 => Ok(statements.remove(0)),
        0 => Err(Error::Invalid("empty statement".into())),
        n => Err(Error::Invalid(format!("expected one statement, got {n}"))),
    }
}

/// An error for grammar/builder disagreements: they are bugs, but input must never panic.
fn invalid_grammar(what: &str) -> Error {
    Error::Invalid(format!("internal parser error: unexpected shape of {what}"))
}

/// An error located at a pair.
fn error_at(pair: &Pair<'_, Rule>, message: String) -> Error {
    let (line, column) = pair.line_col();
    Error::Parse { line, column, message }
}

/// Converts a pest error into a parse error naming what was expected and what was found.
fn parse_error(sql: &str, error: pest::error::Error<Rule>) -> Error {
    let (line, column) = match error.line_col {
        pest::error::LineColLocation::Pos(pos) | pest::error::LineColLocation::Span(pos, _) => pos,
    };
    let offset = match error.location {
        pest::error::InputLocation::Pos(pos) | pest::error::InputLocation::Span((pos, _)) => pos,
    };
    let found = describe_token(sql.get(offset..).unwrap_or(""));
    let message = match error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut expected: Vec<&str> = positives.iter().map(|rule| rule_name(*rule)).collect();
            expected.sort_unstable();
            expected.dedup();
            expected.retain(|name| *name != "token");
            // At the start of a statement, name the category rather than every keyword.
            const STARTS: [&str; 11] = [
                "BEGIN", "COMMIT", "CREATE", "DELETE", "DROP", "EXPLAIN", "INSERT", "ROLLBACK",
                "SELECT", "START", "UPDATE",
            ];
            if ["SELECT", "INSERT", "CREATE", "BEGIN"].iter().all(|k| expected.contains(k)) {
                expected.retain(|name| !STARTS.contains(name));
                expected.push("statement");
                expected.sort_unstable();
                expected.dedup();
            }
            if expected.contains(&"expression") {
                // The parts an expression can start with are implied by "expression".
                expected.retain(|name| {
                    !matches!(
                        *name,
                        "NOT" | "NULL" | "identifier" | "ALL" | "DISTINCT" | "EXISTS" | "subquery"
                    )
                });
            }
            match expected.len() {
                0 => format!("unexpected {found}"),
                1..=8 => format!("expected {}, found {found}", join_or(&expected)),
                _ => format!("unexpected {found}"),
            }
        }
        // pest's own guards against deep recursion ("stack limit reached", "call limit reached").
        pest::error::ErrorVariant::CustomError { message } if message.contains("limit reached") => {
            format!("statement is nested too deeply or too complex ({message}) near {found}")
        }
        pest::error::ErrorVariant::CustomError { message } => format!("{message} near {found}"),
    };
    Error::Parse { line, column, message }
}

/// Names the token at the start of `rest` for an error message.
fn describe_token(rest: &str) -> String {
    let rest = rest.trim_start();
    let Some(first) = rest.chars().next() else {
        return "end of input".into();
    };
    let token: String = if first.is_alphanumeric() || first == '_' {
        rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').take(32).collect()
    } else {
        first.to_string()
    };
    format!("\"{token}\"")
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A readable name for a grammar rule in "expected ..." messages.
fn rule_name(rule: Rule) -> &'static str {
    use Rule::*;
    match rule {
        EOI => "end of input",
        ident | bare_ident | quoted_ident | ident_list | function_name => "identifier",
        expr | operand_expr | paren | case_expr | cast_expr | count_star | function_call
        | column_ref | null | true_ | false_ | float | integer | string | op_not | op_neg
        | op_pos | kw_case | kw_cast | kw_true | kw_false | select_item | select_list
        | wildcard | table_wildcard => "expression",
        op_or | op_and | op_eq | op_ne | op_le | op_ge | op_lt | op_gt | op_concat | op_add
        | op_sub | op_mul | op_div | op_rem | is_null | in_list | between | like | not => {
            "operator"
        }
        data_type | type_name => "data type",
        script | explain | begin | commit | rollback | create_table | create_index | drop_table
        | drop_index | insert | update | delete | select => "statement",
        alias => "alias",
        rparen => "\")\"",
        kw_all => "ALL",
        kw_begin => "BEGIN",
        kw_commit => "COMMIT",
        kw_create => "CREATE",
        kw_delete => "DELETE",
        kw_drop => "DROP",
        kw_explain => "EXPLAIN",
        kw_insert => "INSERT",
        kw_rollback => "ROLLBACK",
        kw_select => "SELECT",
        kw_start => "START",
        kw_update => "UPDATE",
        kw_and => "AND",
        kw_as => "AS",
        kw_by => "BY",
        kw_from => "FROM",
        kw_where => "WHERE",
        kw_group => "GROUP BY",
        kw_having => "HAVING",
        kw_order => "ORDER BY",
        kw_limit | limit => "LIMIT",
        kw_offset | offset => "OFFSET",
        kw_into => "INTO",
        kw_values | values => "VALUES",
        kw_set => "SET",
        kw_on => "ON",
        kw_table => "TABLE",
        kw_index => "INDEX",
        kw_key => "KEY",
        kw_then => "THEN",
        kw_when | case_when => "WHEN",
        kw_else | case_else => "ELSE",
        kw_end => "END",
        kw_join | cross_join | left_join | inner_join => "JOIN",
        kw_null => "NULL",
        kw_not => "NOT",
        kw_in => "IN",
        kw_exists => "EXISTS",
        kw_distinct | distinct => "DISTINCT",
        kw_union | union_all | union_distinct => "UNION",
        kw_view => "VIEW",
        kw_intersect | intersect => "INTERSECT",
        kw_except | except => "EXCEPT",
        kw_default | default | default_values => "DEFAULT",
        kw_primary | primary_key | table_primary_key => "PRIMARY KEY",
        kw_unique | unique | table_unique => "UNIQUE",
        not_null => "NOT NULL",
        kw_asc | asc => "ASC",
        kw_desc | desc => "DESC",
        kw_nulls | nulls_first | nulls_last => "NULLS",
        kw_of => "OF",
        kw_system => "SYSTEM",
        kw_time => "TIME",
        kw_only | read_only => "ONLY",
        kw_write => "WRITE",
        kw_read | access_mode => "READ",
        kw_transaction => "TRANSACTION",
        kw_if | if_exists | if_not_exists => "IF",
        where_clause => "WHERE",
        group_by => "GROUP BY",
        having => "HAVING",
        order_by => "ORDER BY",
        from_clause => "FROM",
        // A table name, or a parenthesized subquery or join.
        derived_table | table_ref => "identifier",
        with_clause | kw_with | common_table | recursive | kw_recursive => "WITH",
        returning | kw_returning => "RETURNING",
        reindex | kw_reindex => "REINDEX",
        analyze | kw_analyze => "ANALYZE",
        _ => "token",
    }
}

/// Lower-cases an unquoted identifier; unquotes a quoted one (keeping its case).
fn identifier(pair: Pair<'_, Rule>) -> Result<String> {
    let inner = match pair.as_rule() {
        Rule::ident => pair.into_inner().next().ok_or_else(|| invalid_grammar("identifier"))?,
        _ => pair,
    };
    Ok(match inner.as_rule() {
        Rule::quoted_ident => {
            let text = inner.as_str();
            text[1..text.len() - 1].replace("\"\"", "\"")
        }
        _ => inner.as_str().to_ascii_lowercase(),
    })
}

fn identifiers(pair: Pair<'_, Rule>) -> Result<Vec<String>> {
    pair.into_inner().map(identifier).collect()
}

fn build_statement(pair: Pair<'_, Rule>) -> Result<Statement> {
    let rule = pair.as_rule();
    let mut inner = pair.into_inner();
    Ok(match rule {
        Rule::select => Statement::Select(Box::new(build_query(inner)?)),
        Rule::insert => build_insert(inner)?,
        Rule::update => {
            let table = identifier(next(&mut inner, "UPDATE")?)?;
            let returning = build_returning(inner.clone())?;
            let (set, filter) = build_set(inner)?;
            Statement::Update { table, set, filter, returning }
        }
        Rule::delete => {
            let table = identifier(next(&mut inner, "DELETE")?)?;
            let returning = build_returning(inner.clone())?;
            let filter = inner
                .find(|p| p.as_rule() == Rule::where_clause)
                .map(build_clause_expr)
                .transpose()?;
            Statement::Delete { table, filter, returning }
        }
        Rule::create_table => build_create_table(inner)?,
        Rule::alter_table => {
            let mut name = None;
            let mut change = None;
            for item in inner {
                match item.as_rule() {
                    Rule::ident => name = Some(identifier(item)?),
                    Rule::alter_set => change = Some(TableChange::Set(table_options(item)?)),
                    Rule::alter_reset => {
                        let names = item.into_inner().filter(|p| p.as_rule() == Rule::ident);
                        let names = names.map(identifier).collect::<Result<_>>()?;
                        change = Some(TableChange::Reset(names));
                    }
                    _ => {}
                }
            }
            match (name, change) {
                (Some(name), Some(change)) => Statement::AlterTable { name, change },
                _ => return Err(invalid_grammar("ALTER TABLE")),
            }
        }
        Rule::drop_table => {
            let (name, if_exists) = dropped(inner)?;
            Statement::DropTable { name, if_exists }
        }
        Rule::drop_view => {
            let (name, if_exists) = dropped(inner)?;
            Statement::DropView { name, if_exists }
        }
        Rule::drop_rollup => {
            let (name, if_exists) = dropped(inner)?;
            Statement::DropRollup { name, if_exists }
        }
        Rule::create_rollup => {
            let (mut name, mut query, mut options, mut if_not_exists) =
                (None, None, Vec::new(), false);
            for part in inner {
                match part.as_rule() {
                    Rule::if_not_exists => if_not_exists = true,
                    Rule::ident => name = Some(identifier(part)?),
                    Rule::select => query = Some(Box::new(build_query(part.into_inner())?)),
                    Rule::table_options => options = table_options(part)?,
                    _ => {}
                }
            }
            match (name, query) {
                (Some(name), Some(query)) => {
                    Statement::CreateRollup { name, query, options, if_not_exists }
                }
                _ => return Err(invalid_grammar("CREATE ROLLUP")),
            }
        }
        Rule::create_view => {
            let (mut name, mut columns, mut query, mut if_not_exists) =
                (None, Vec::new(), None, false);
            for part in inner {
                match part.as_rule() {
                    Rule::if_not_exists => if_not_exists = true,
                    Rule::ident => name = Some(identifier(part)?),
                    Rule::ident_list => {
                        columns = part.into_inner().map(identifier).collect::<Result<_>>()?
                    }
                    Rule::select => query = Some(Box::new(build_query(part.into_inner())?)),
                    _ => {}
                }
            }
            let name = name.ok_or_else(|| invalid_grammar("CREATE VIEW"))?;
            let query = query.ok_or_else(|| invalid_grammar("CREATE VIEW"))?;
            Statement::CreateView { name, columns, query, if_not_exists }
        }
        Rule::create_index => {
            let mut unique = false;
            let mut if_not_exists = false;
            let mut names = Vec::new();
            let mut columns = Vec::new();
            for item in inner {
                match item.as_rule() {
                    Rule::unique => unique = true,
                    Rule::if_not_exists => if_not_exists = true,
                    Rule::ident => names.push(identifier(item)?),
                    Rule::ident_list => columns = identifiers(item)?,
                    _ => {}
                }
            }
            let [name, table] =
                <[String; 2]>::try_from(names).map_err(|_| invalid_grammar("CREATE INDEX"))?;
            Statement::CreateIndex { name, table, columns, unique, if_not_exists }
        }
        Rule::drop_index => {
            let (name, if_exists) = dropped(inner)?;
            Statement::DropIndex { name, if_exists }
        }
        Rule::create_user | Rule::alter_user | Rule::drop_user | Rule::grant | Rule::revoke => {
            Statement::Users(build_user_statement(rule, inner)?)
        }
        Rule::analyze => Statement::Analyze {
            table: inner.find(|p| p.as_rule() == Rule::ident).map(identifier).transpose()?,
        },
        Rule::reindex => Statement::Reindex {
            name: inner.find(|p| p.as_rule() == Rule::ident).map(identifier).transpose()?,
        },
        Rule::begin => {
            let mut read_only = false;
            let mut as_of = None;
            for item in inner {
                match item.as_rule() {
                    Rule::access_mode => {
                        read_only = item.into_inner().any(|p| p.as_rule() == Rule::read_only)
                    }
                    Rule::as_of => {
                        let number = item.into_inner().find(|p| p.as_rule() == Rule::integer);
                        let number = number.ok_or_else(|| invalid_grammar("AS OF"))?;
                        let version = number.as_str().parse().map_err(|_| {
                            error_at(
                                &number,
                                format!("version {} is out of range", number.as_str()),
                            )
                        })?;
                        as_of = Some(version);
                    }
                    _ => {}
                }
            }
            if as_of.is_some() && !read_only {
                return Err(Error::Invalid("AS OF SYSTEM TIME requires READ ONLY".into()));
            }
            Statement::Begin { read_only, as_of }
        }
        Rule::commit => Statement::Commit,
        Rule::rollback => Statement::Rollback,
        Rule::explain => {
            let target = inner
                .find(|p| p.as_rule() != Rule::kw_explain)
                .ok_or_else(|| invalid_grammar("EXPLAIN"))?;
            Statement::Explain(Box::new(build_statement(target)?))
        }
        _ => return Err(invalid_grammar("statement")),
    })
}

fn next<'i>(pairs: &mut Pairs<'i, Rule>, what: &str) -> Result<Pair<'i, Rule>> {
    // Keywords are tokens of their own; skip them.
    pairs.find(|p| !is_keyword(p.as_rule())).ok_or_else(|| invalid_grammar(what))
}

/// The keyword rules (`kw_*`), computed once from the grammar.
static KEYWORDS: LazyLock<std::collections::HashSet<Rule>> = LazyLock::new(|| {
    Rule::all_rules()
        .iter()
        .copied()
        .filter(|rule| format!("{rule:?}").starts_with("kw_"))
        .collect()
});

fn is_keyword(rule: Rule) -> bool {
    KEYWORDS.contains(&rule)
}

/// Builds the expression of a clause such as `WHERE expr`.
fn build_clause_expr(pair: Pair<'_, Rule>) -> Result<Expression> {
    let mut inner = pair.into_inner();
    build_expr(next(&mut inner, "clause")?, 0)
}

/// The `column = value` assignments and the WHERE condition among `pairs` (UPDATE, ON
/// CONFLICT DO UPDATE).
type Assignments = (Vec<(String, Expression)>, Option<Expression>);
fn build_set(pairs: Pairs<'_, Rule>) -> Result<Assignments> {
    let (mut set, mut filter) = (Vec::new(), None);
    for item in pairs {
        match item.as_rule() {
            Rule::assignment => {
                let mut parts = item.into_inner();
                let column = identifier(next(&mut parts, "assignment")?)?;
                set.push((column, build_expr(next(&mut parts, "assignment")?, 0)?));
            }
            Rule::where_clause => filter = Some(build_clause_expr(item)?),
            _ => {}
        }
    }
    Ok((set, filter))
}

/// Builds ON CONFLICT [(cols)] DO ... (the listed columns must be the primary key: checked
/// when planned, through `OnConflict`'s target being the key).
fn build_on_conflict(pair: Pair<'_, Rule>) -> Result<OnConflict> {
    let (mut conflict, mut target) = (None, Vec::new());
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::ident_list => target = identifiers(part)?,
            Rule::do_nothing => conflict = Some(OnConflict::Ignore { target: Vec::new() }),
            Rule::do_update => {
                let (set, filter) = build_set(part.into_inner())?;
                conflict = Some(OnConflict::Update { target: Vec::new(), set, filter });
            }
            _ => {}
        }
    }
    let mut conflict = conflict.ok_or_else(|| invalid_grammar("ON CONFLICT"))?;
    match &mut conflict {
        OnConflict::Ignore { target: t } | OnConflict::Update { target: t, .. } => *t = target,
        OnConflict::Replace => {}
    }
    Ok(conflict)
}

/// The RETURNING list among a write's parts (empty if none).
fn build_returning(parts: Pairs<'_, Rule>) -> Result<Vec<SelectItem>> {
    let mut parts = parts;
    match parts.find(|p| p.as_rule() == Rule::returning) {
        Some(returning) => {
            match returning.into_inner().find(|p| p.as_rule() == Rule::select_list) {
                Some(list) => build_select_list(list),
                None => Err(invalid_grammar("RETURNING")),
            }
        }
        None => Ok(Vec::new()),
    }
}

fn build_insert(inner: Pairs<'_, Rule>) -> Result<Statement> {
    // REPLACE INTO starts with REPLACE rather than INSERT.
    let replace = inner.clone().next().is_some_and(|p| p.as_rule() == Rule::kw_replace);
    let table = inner.clone().find(|p| p.as_rule() == Rule::ident);
    let table = identifier(table.ok_or_else(|| invalid_grammar("INSERT"))?)?;
    let mut columns = None;
    let mut source = None;
    let mut conflict = replace.then_some(OnConflict::Replace);
    let returning = build_returning(inner.clone())?;
    for item in inner {
        match item.as_rule() {
            Rule::ident_list => columns = Some(identifiers(item)?),
            Rule::or_replace => conflict = Some(OnConflict::Replace),
            Rule::or_ignore => conflict = Some(OnConflict::Ignore { target: Vec::new() }),
            Rule::on_conflict => conflict = Some(build_on_conflict(item)?),
            Rule::values => {
                let rows = item
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::values_row)
                    .map(|row| {
                        row.into_inner()
                            .filter(|p| p.as_rule() != Rule::rparen)
                            .map(build_value)
                            .collect::<Result<Vec<_>>>()
                    })
                    .collect::<Result<_>>()?;
                source = Some(InsertSource::Values(rows));
            }
            Rule::default_values => source = Some(InsertSource::DefaultValues),
            Rule::select => {
                source = Some(InsertSource::Select(Box::new(build_query(item.into_inner())?)))
            }
            _ => {}
        }
    }
    let source = source.ok_or_else(|| invalid_grammar("INSERT"))?;
    Ok(Statement::Insert { table, columns, source, conflict, returning })
}

/// The text an `X'...'` literal's bytes spell (UTF-8), as Chronos has no BLOB type.
fn blob_text(literal: &str) -> Result<String> {
    let hex = &literal[2..literal.len() - 1];
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| invalid_grammar("X'...'"))?;
    String::from_utf8(bytes).map_err(|_| {
        Error::Invalid(format!(
            "{literal}: Chronos has no BLOB type, and reads X'...' as text; these bytes are not UTF-8"
        ))
    })
}

/// Builds one value of a VALUES row: a plain literal (the fast path) or an expression.
fn build_value(pair: Pair<'_, Rule>) -> Result<Expression> {
    match pair.as_rule() {
        Rule::expr => build_expr(pair, 0),
        _ => build_primary(pair, 0).map(|(expr, _)| expr),
    }
}

/// The name and `IF EXISTS` flag of a `DROP TABLE` or `DROP INDEX`.
/// Builds a statement on users from its rule and parts.
fn build_user_statement(rule: Rule, inner: Pairs<'_, Rule>) -> Result<UserStatement> {
    let flag = |r: Rule| inner.clone().any(|p| p.as_rule() == r);
    let (if_exists, if_not_exists) = (flag(Rule::if_exists), flag(Rule::if_not_exists));
    let names = inner
        .clone()
        .filter(|p| p.as_rule() == Rule::ident)
        .map(identifier)
        .collect::<Result<Vec<_>>>()?;
    let password = inner.clone().find(|p| p.as_rule() == Rule::string).map(|p| {
        let text = p.as_str();
        Credential::Password(text[1..text.len() - 1].replace("''", "'"))
    });
    let mut names = names.into_iter();
    let mut name = || names.next().ok_or_else(|| invalid_grammar("a user statement"));
    Ok(match (rule, password) {
        (Rule::create_user, Some(credential)) => {
            UserStatement::Create { name: name()?, credential, if_not_exists }
        }
        (Rule::alter_user, Some(credential)) => {
            UserStatement::SetPassword { name: name()?, credential }
        }
        (Rule::drop_user, _) => UserStatement::Drop { name: name()?, if_exists },
        (Rule::grant, _) => UserStatement::Grant { role: name()?, user: name()? },
        (Rule::revoke, _) => UserStatement::Revoke { role: name()?, user: name()? },
        _ => return Err(invalid_grammar("a user statement")),
    })
}

fn dropped(mut inner: Pairs<'_, Rule>) -> Result<(String, bool)> {
    let if_exists = inner.clone().any(|p| p.as_rule() == Rule::if_exists);
    let name = inner.find(|p| p.as_rule() == Rule::ident).ok_or_else(|| invalid_grammar("DROP"))?;
    Ok((identifier(name)?, if_exists))
}

fn build_create_table(inner: Pairs<'_, Rule>) -> Result<Statement> {
    let mut name = None;
    let mut if_not_exists = false;
    let mut columns = Vec::new();
    let mut primary_key = None;
    let mut unique = Vec::new();
    let mut options = Vec::new();
    for item in inner {
        match item.as_rule() {
            Rule::if_not_exists => if_not_exists = true,
            Rule::ident => name = Some(identifier(item)?),
            Rule::table_primary_key => {
                let list = item.into_inner().find(|p| p.as_rule() == Rule::ident_list);
                let list = identifiers(list.ok_or_else(|| invalid_grammar("PRIMARY KEY"))?)?;
                if primary_key.replace(list).is_some() {
                    return Err(Error::Invalid("multiple primary keys are not allowed".into()));
                }
            }
            Rule::table_unique => {
                let list = item.into_inner().find(|p| p.as_rule() == Rule::ident_list);
                unique.push(identifiers(list.ok_or_else(|| invalid_grammar("UNIQUE"))?)?);
            }
            Rule::column_def => columns.push(build_column(item)?),
            Rule::table_options => options = table_options(item)?,
            _ => {}
        }
    }
    let name = name.ok_or_else(|| invalid_grammar("CREATE TABLE"))?;
    Ok(Statement::CreateTable { name, columns, primary_key, unique, if_not_exists, options })
}

/// The `name = value` options in `pair` (WITH (...) or SET (...)).
fn table_options(pair: Pair<'_, Rule>) -> Result<Vec<TableOption>> {
    let options = pair.into_inner().filter(|p| p.as_rule() == Rule::table_option);
    options
        .map(|option| {
            let mut parts = option.into_inner();
            let name = identifier(next(&mut parts, "option")?)?;
            let value = next(&mut parts, "option value")?;
            let value = match value.as_rule() {
                Rule::string => {
                    let text = value.as_str();
                    text[1..text.len() - 1].replace("''", "'")
                }
                _ => identifier(value)?,
            };
            Ok(TableOption { name, value })
        })
        .collect()
}

fn build_column(pair: Pair<'_, Rule>) -> Result<ColumnDef> {
    let mut inner = pair.into_inner();
    let name = identifier(next(&mut inner, "column")?)?;
    let (datatype, max_length) = build_data_type(next(&mut inner, "column type")?)?;
    let mut column = ColumnDef {
        name,
        datatype,
        max_length,
        primary_key: false,
        nullable: None,
        unique: false,
        default: None,
    };
    for constraint in inner {
        match constraint.as_rule() {
            Rule::primary_key => column.primary_key = true,
            Rule::not_null => column.nullable = Some(false),
            Rule::nullable => column.nullable = Some(true),
            Rule::unique => column.unique = true,
            Rule::default => {
                let mut parts = constraint.into_inner();
                column.default = Some(build_expr(next(&mut parts, "DEFAULT")?, 0)?);
            }
            _ => {}
        }
    }
    Ok(column)
}

/// Builds a data type and its optional length (VARCHAR(n)).
fn build_data_type(pair: Pair<'_, Rule>) -> Result<(DataType, Option<u32>)> {
    let mut inner = pair.into_inner();
    let name_pair = inner.next().ok_or_else(|| invalid_grammar("data type"))?;
    let name: String =
        name_pair.as_str().split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    let datatype = DataType::from_name(&name).ok_or_else(|| {
        error_at(&name_pair, format!("unknown data type \"{}\"", name_pair.as_str()))
    })?;
    let length = match inner.next() {
        Some(length) if datatype == DataType::String => {
            Some(length.as_str().parse::<u32>().map_err(|_| {
                error_at(&length, format!("length {} is out of range", length.as_str()))
            })?)
        }
        _ => None,
    };
    Ok((datatype, length))
}

/// Builds a query: a SELECT, or SELECTs joined by set operators, whose ORDER BY, LIMIT and
/// OFFSET (written after the last) apply to the whole and are kept on the first.
fn build_query(inner: Pairs<'_, Rule>) -> Result<Select> {
    let mut first: Option<Select> = None;
    let mut op = None;
    let mut with = Vec::new();
    for item in inner {
        match item.as_rule() {
            Rule::with_clause => {
                let parts: Vec<_> = item.into_inner().collect();
                let recursive = parts.iter().any(|p| p.as_rule() == Rule::recursive);
                for table in parts.into_iter().filter(|p| p.as_rule() == Rule::common_table) {
                    let mut parts = table.into_inner();
                    let name = identifier(parts.next().ok_or_else(|| invalid_grammar("WITH"))?)?;
                    let mut columns = Vec::new();
                    let mut query = None;
                    for part in parts {
                        match part.as_rule() {
                            Rule::ident_list => {
                                columns =
                                    part.into_inner().map(identifier).collect::<Result<_>>()?
                            }
                            Rule::select => query = Some(build_query(part.into_inner())?),
                            _ => {}
                        }
                    }
                    let query = query.ok_or_else(|| invalid_grammar("WITH"))?;
                    with.push(CommonTable { name, columns, query, recursive });
                }
            }
            Rule::compound_op => {
                let kind = item.into_inner().next().map(|p| p.as_rule());
                op = Some(match kind {
                    Some(Rule::union_all) => SetOperator::UnionAll,
                    Some(Rule::intersect) => SetOperator::Intersect,
                    Some(Rule::except) => SetOperator::Except,
                    _ => SetOperator::Union,
                });
            }
            Rule::select_core => {
                let select = build_select(item.into_inner())?;
                match (&mut first, op.take()) {
                    (None, _) => first = Some(select),
                    (Some(first), Some(op)) => first.compound.push(Compound { op, select }),
                    (Some(_), None) => return Err(invalid_grammar("compound query")),
                }
            }
            _ => {}
        }
    }
    let mut query = first.ok_or_else(|| invalid_grammar("SELECT"))?;
    query.with = with;
    let Some(last) = query.compound.last_mut() else { return Ok(query) };
    let (order_by, limit, offset) = (
        std::mem::take(&mut last.select.order_by),
        last.select.limit.take(),
        last.select.offset.take(),
    );
    let before = std::iter::once(&query).chain(query.compound.iter().map(|c| &c.select));
    if before.into_iter().any(|s| !s.order_by.is_empty() || s.limit.is_some() || s.offset.is_some())
    {
        return Err(Error::Invalid(
            "ORDER BY, LIMIT and OFFSET of a compound query come after its last SELECT".into(),
        ));
    }
    (query.order_by, query.limit, query.offset) = (order_by, limit, offset);
    Ok(query)
}

/// A select list (also RETURNING's).
fn build_select_list(list: Pair<'_, Rule>) -> Result<Vec<SelectItem>> {
    let mut items = Vec::new();
    for entry in list.into_inner() {
        let mut parts = entry.into_inner();
        let first = parts.next().ok_or_else(|| invalid_grammar("select item"))?;
        items.push(match first.as_rule() {
            Rule::wildcard => SelectItem::Wildcard,
            Rule::table_wildcard => {
                let table = first.into_inner().next().ok_or_else(|| invalid_grammar("table.*"))?;
                SelectItem::TableWildcard(identifier(table)?)
            }
            _ => {
                let expr = build_expr(first, 0)?;
                let alias = parts.next().map(build_alias).transpose()?;
                SelectItem::Expression(expr, alias)
            }
        });
    }
    Ok(items)
}

fn build_select(inner: Pairs<'_, Rule>) -> Result<Select> {
    let mut select = Select::default();
    for item in inner {
        match item.as_rule() {
            Rule::distinct => select.distinct = true,
            Rule::select_list => select.select = build_select_list(item)?,
            Rule::from_clause => {
                select.from = item
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::from_item)
                    .map(build_from)
                    .collect::<Result<_>>()?;
            }
            Rule::where_clause => select.filter = Some(build_clause_expr(item)?),
            Rule::group_by => {
                select.group_by = item
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::expr)
                    .map(|e| build_expr(e, 0))
                    .collect::<Result<_>>()?;
            }
            Rule::having => select.having = Some(build_clause_expr(item)?),
            Rule::order_by => {
                for order in item.into_inner().filter(|p| p.as_rule() == Rule::order_item) {
                    select.order_by.push(build_order_item(order, 0)?);
                }
            }
            Rule::limit => select.limit = Some(build_clause_expr(item)?),
            Rule::offset => select.offset = Some(build_clause_expr(item)?),
            _ => {}
        }
    }
    Ok(select)
}

fn build_alias(pair: Pair<'_, Rule>) -> Result<String> {
    let ident = pair
        .into_inner()
        .find(|p| p.as_rule() == Rule::ident)
        .ok_or_else(|| invalid_grammar("alias"))?;
    identifier(ident)
}

fn build_from(pair: Pair<'_, Rule>) -> Result<FromItem> {
    let mut inner = pair.into_inner();
    let mut item = build_table_ref(inner.next().ok_or_else(|| invalid_grammar("FROM item"))?)?;
    for join in inner {
        let mut parts = join.into_inner();
        let kind = match parts.next().map(|p| p.as_rule()) {
            Some(Rule::cross_join) => JoinKind::Cross,
            Some(Rule::left_join) => JoinKind::Left,
            Some(Rule::inner_join) => JoinKind::Inner,
            _ => return Err(invalid_grammar("JOIN")),
        };
        let right = build_table_ref(parts.next().ok_or_else(|| invalid_grammar("JOIN"))?)?;
        let on = parts.find(|p| p.as_rule() == Rule::expr).map(|e| build_expr(e, 0)).transpose()?;
        if on.is_none() && kind != JoinKind::Cross {
            return Err(Error::Invalid("JOIN requires an ON condition (or use CROSS JOIN)".into()));
        }
        if on.is_some() && kind == JoinKind::Cross {
            return Err(Error::Invalid("CROSS JOIN takes no ON condition".into()));
        }
        item = FromItem::Join { left: Box::new(item), right: Box::new(right), kind, on };
    }
    Ok(item)
}

fn build_table_ref(pair: Pair<'_, Rule>) -> Result<FromItem> {
    let mut inner = pair.into_inner();
    let first = inner.next().ok_or_else(|| invalid_grammar("table"))?;
    if first.as_rule() == Rule::from_item {
        return build_from(first);
    }
    if first.as_rule() == Rule::series {
        let mut args = Vec::new();
        let mut names = Vec::new();
        for part in first.into_inner() {
            match part.as_rule() {
                Rule::expr => args.push(build_expr(part, 0)?),
                Rule::ident => names.push(identifier(part)?),
                _ => {}
            }
        }
        let mut names = names.into_iter();
        return Ok(FromItem::Series { args, alias: names.next(), column: names.next() });
    }
    if first.as_rule() == Rule::derived_table {
        let mut parts = first.into_inner();
        let query = parts.next().ok_or_else(|| invalid_grammar("subquery"))?;
        let query = Box::new(build_query(query.into_inner())?);
        let alias = parts.find(|p| p.as_rule() == Rule::alias).map(build_alias).transpose()?;
        return Ok(FromItem::Query { query, alias });
    }
    let name = identifier(first)?;
    let alias = inner.next().map(build_alias).transpose()?;
    Ok(FromItem::Table { name, alias })
}

/// An expression under construction and the depth of its tree.
type Built = Result<(Expression, usize)>;

/// Builds an expression from an `expr` or `operand_expr` pair. `depth` is the depth at which
/// the expression sits in the enclosing tree.
fn build_expr(pair: Pair<'_, Rule>, depth: usize) -> Result<Expression> {
    build_expr_depth(pair, depth).map(|(expr, _)| expr)
}

fn build_expr_depth(pair: Pair<'_, Rule>, depth: usize) -> Built {
    crate::sql::with_stack(|| {
        let position = pair.clone();
        let too_deep = || {
            error_at(
                &position,
                format!("expression is nested too deeply (the limit is {MAX_EXPRESSION_DEPTH})"),
            )
        };
        if depth > MAX_EXPRESSION_DEPTH {
            return Err(too_deep());
        }
        let pairs = pair.into_inner();
        // pest's Pratt parser panics on an empty sequence; the grammar never produces one, but
        // input must never reach a panic.
        if pairs.peek().is_none() {
            return Err(invalid_grammar("expression"));
        }
        // pest's Pratt parser recurses once per consecutive prefix operator; bound it first.
        let (mut run, mut longest_run) = (0usize, 0usize);
        for item in pairs.clone() {
            run = if matches!(item.as_rule(), Rule::op_not | Rule::op_neg | Rule::op_pos) {
                run + 1
            } else {
                0
            };
            longest_run = longest_run.max(run);
            if depth + run > MAX_EXPRESSION_DEPTH {
                return Err(too_deep());
            }
        }
        let checked = |expr: Expression, tree_depth: usize| -> Built {
            if depth + tree_depth > MAX_EXPRESSION_DEPTH {
                Err(too_deep())
            } else {
                Ok((expr, tree_depth))
            }
        };
        let needed = 128 * 1024 + longest_run * 8 * 1024;
        stacker::maybe_grow(needed, needed * 2, || {
            PRATT
                .map_primary(|primary| build_primary(primary, depth))
                .map_prefix(|op_pair, rhs| {
                    let (rhs, d) = rhs?;
                    let op = match op_pair.as_rule() {
                        Rule::op_not => UnaryOp::Not,
                        Rule::op_neg => UnaryOp::Negate,
                        _ => UnaryOp::Plus,
                    };
                    // Fold a negated numeric literal into a constant. -9223372036854775808 is the one
                    // integer whose digits alone overflow; as in SQLite, it is an INTEGER.
                    let min_integer = op == UnaryOp::Negate && precedes_min_integer(&op_pair);
                    let expr = match (op, rhs) {
                        (UnaryOp::Negate, Expression::Literal(Value::Float(_))) if min_integer => {
                            Expression::Literal(Value::Integer(i64::MIN))
                        }
                        (UnaryOp::Negate, Expression::Literal(Value::Integer(i)))
                            if i != i64::MIN =>
                        {
                            Expression::Literal(Value::Integer(-i))
                        }
                        (UnaryOp::Negate, Expression::Literal(Value::Float(f))) => {
                            Expression::Literal(Value::Float(-f))
                        }
                        (op, rhs) => Expression::Unary(op, Box::new(rhs)),
                    };
                    checked(expr, d + 1)
                })
                .map_postfix(|lhs, op| {
                    let (lhs, d) = lhs?;
                    let lhs = Box::new(lhs);
                    let negated = op.clone().into_inner().any(|p| p.as_rule() == Rule::not);
                    let mut operands = op
                        .clone()
                        .into_inner()
                        .filter(|p| matches!(p.as_rule(), Rule::expr | Rule::operand_expr));
                    let mut operand = || -> Built {
                        let pair = operands.next().ok_or_else(|| invalid_grammar("operator"))?;
                        build_expr_depth(pair, depth + d + 1)
                    };
                    let (expr, deepest) = match op.as_rule() {
                        Rule::is_null => (Expression::IsNull { expr: lhs, negated }, 0),
                        Rule::between => {
                            let (low, dl) = operand()?;
                            let (high, dh) = operand()?;
                            (
                                Expression::Between {
                                    expr: lhs,
                                    low: Box::new(low),
                                    high: Box::new(high),
                                    negated,
                                },
                                dl.max(dh),
                            )
                        }
                        Rule::like => {
                            let (pattern, dp) = operand()?;
                            (
                                Expression::Like { expr: lhs, pattern: Box::new(pattern), negated },
                                dp,
                            )
                        }
                        _ if op.clone().into_inner().any(|p| p.as_rule() == Rule::select) => {
                            let query = op
                                .clone()
                                .into_inner()
                                .find(|p| p.as_rule() == Rule::select)
                                .ok_or_else(|| invalid_grammar("IN"))?;
                            let query = Box::new(build_query(query.into_inner())?);
                            (Expression::InSubquery { expr: lhs, query, negated }, 0)
                        }
                        _ => {
                            let mut list = Vec::new();
                            let mut deepest = 0;
                            while let Ok((item, di)) = operand() {
                                deepest = deepest.max(di);
                                list.push(item);
                            }
                            (Expression::InList { expr: lhs, list, negated }, deepest)
                        }
                    };
                    checked(expr, d.max(deepest) + 1)
                })
                .map_infix(|lhs, op, rhs| {
                    let ((lhs, dl), (rhs, dr)) = (lhs?, rhs?);
                    let op = match op.as_rule() {
                        Rule::op_or => BinaryOp::Or,
                        Rule::op_and => BinaryOp::And,
                        Rule::op_eq => BinaryOp::Equal,
                        Rule::op_ne => BinaryOp::NotEqual,
                        Rule::op_lt => BinaryOp::Less,
                        Rule::op_le => BinaryOp::LessOrEqual,
                        Rule::op_gt => BinaryOp::Greater,
                        Rule::op_ge => BinaryOp::GreaterOrEqual,
                        Rule::op_concat => BinaryOp::Concat,
                        Rule::op_add => BinaryOp::Arithmetic(ArithmeticOp::Add),
                        Rule::op_sub => BinaryOp::Arithmetic(ArithmeticOp::Subtract),
                        Rule::op_mul => BinaryOp::Arithmetic(ArithmeticOp::Multiply),
                        Rule::op_div => BinaryOp::Arithmetic(ArithmeticOp::Divide),
                        _ => BinaryOp::Arithmetic(ArithmeticOp::Remainder),
                    };
                    checked(Expression::Binary(op, Box::new(lhs), Box::new(rhs)), dl.max(dr) + 1)
                })
                .parse(pairs)
        })
    })
}

/// One ORDER BY item (a query's or a window's).
fn build_order_item(pair: Pair<'_, Rule>, depth: usize) -> Result<OrderItem> {
    let mut entry =
        OrderItem { expr: Expression::Literal(Value::Null), descending: false, nulls_first: None };
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::expr => entry.expr = build_expr(part, depth)?,
            Rule::desc => entry.descending = true,
            Rule::nulls_first => entry.nulls_first = Some(true),
            Rule::nulls_last => entry.nulls_first = Some(false),
            _ => {}
        }
    }
    Ok(entry)
}

/// `OVER (PARTITION BY ... ORDER BY ... ROWS ...)`.
fn build_window(pair: Pair<'_, Rule>, depth: usize) -> Result<WindowSpec> {
    let mut window = WindowSpec { partition_by: Vec::new(), order_by: Vec::new(), frame: None };
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::window_partition => {
                for expr in part.into_inner().filter(|p| p.as_rule() == Rule::expr) {
                    window.partition_by.push(build_expr(expr, depth + 1)?);
                }
            }
            Rule::window_order => {
                for item in part.into_inner().filter(|p| p.as_rule() == Rule::order_item) {
                    window.order_by.push(build_order_item(item, depth + 1)?);
                }
            }
            Rule::window_frame => {
                let position = part.clone();
                let bounds: Vec<FrameBound> = part
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::frame_bound)
                    .map(build_frame_bound)
                    .collect::<Result<_>>()?;
                let frame = match bounds.as_slice() {
                    [start] => WindowFrame { start: *start, end: FrameBound::CurrentRow },
                    [start, end] => WindowFrame { start: *start, end: *end },
                    _ => return Err(invalid_grammar("window frame")),
                };
                let rank = |b: FrameBound| match b {
                    FrameBound::UnboundedPreceding => 0,
                    FrameBound::Preceding(_) => 1,
                    FrameBound::CurrentRow => 2,
                    FrameBound::Following(_) => 3,
                    FrameBound::UnboundedFollowing => 4,
                };
                if frame.start == FrameBound::UnboundedFollowing
                    || frame.end == FrameBound::UnboundedPreceding
                    || rank(frame.start) > rank(frame.end)
                {
                    return Err(error_at(&position, "the frame must start before it ends".into()));
                }
                window.frame = Some(frame);
            }
            _ => {}
        }
    }
    Ok(window)
}

/// One end of a ROWS frame.
fn build_frame_bound(pair: Pair<'_, Rule>) -> Result<FrameBound> {
    let parts: Vec<Pair<'_, Rule>> = pair.into_inner().collect();
    let rules: Vec<Rule> = parts.iter().map(|p| p.as_rule()).collect();
    Ok(match rules.as_slice() {
        [Rule::frame_unbounded, Rule::frame_preceding] => FrameBound::UnboundedPreceding,
        [Rule::frame_unbounded, Rule::frame_following] => FrameBound::UnboundedFollowing,
        [Rule::frame_current] => FrameBound::CurrentRow,
        [Rule::integer, direction] => {
            let n: u64 = parts[0]
                .as_str()
                .parse()
                .map_err(|_| error_at(&parts[0], "frame offset out of range".into()))?;
            match direction {
                Rule::frame_preceding => FrameBound::Preceding(n),
                _ => FrameBound::Following(n),
            }
        }
        _ => return Err(invalid_grammar("window frame bound")),
    })
}

/// `TIMESTAMP '...'` or `INTERVAL '...'` as its value; a text that does not parse is an error
/// at the literal.
fn typed_literal(pair: Pair<'_, Rule>) -> Result<Value> {
    let position = pair.clone();
    let mut parts = pair.into_inner();
    let (Some(kind), Some(text)) = (parts.next(), parts.next()) else {
        return Err(invalid_grammar("typed literal"));
    };
    let text = text.as_str();
    let text = text[1..text.len() - 1].replace("''", "'");
    let datatype = match kind.as_str().to_ascii_lowercase().as_str() {
        "timestamp" => crate::sql::types::DataType::Timestamp,
        _ => crate::sql::types::DataType::Interval,
    };
    Value::String(text).cast(datatype).map_err(|error| error_at(&position, error.to_string()))
}

fn build_primary(pair: Pair<'_, Rule>, depth: usize) -> Built {
    crate::sql::with_stack(|| {
        let rule = pair.as_rule();
        let position = pair.clone();
        let nested = |pair: Pair<'_, Rule>| build_expr_depth(pair, depth + 1);
        Ok(match rule {
            Rule::null => (Expression::Literal(Value::Null), 1),
            Rule::true_ => (Expression::Literal(Value::Boolean(true)), 1),
            Rule::false_ => (Expression::Literal(Value::Boolean(false)), 1),
            // An integer too large for i64 becomes a float, as in SQLite. A signed literal
            // parses whole, so -9223372036854775808 is an INTEGER.
            Rule::integer | Rule::signed_number => (Expression::Literal(number(&pair)?), 1),
            Rule::float => {
                let value = pair
                    .as_str()
                    .parse::<f64>()
                    .map_err(|_| error_at(&position, "invalid number".into()))?;
                (Expression::Literal(Value::Float(value)), 1)
            }
            Rule::string => {
                let text = pair.as_str();
                (Expression::Literal(Value::String(text[1..text.len() - 1].replace("''", "'"))), 1)
            }
            Rule::blob => (Expression::Literal(Value::String(blob_text(pair.as_str())?)), 1),
            Rule::typed_literal => (Expression::Literal(typed_literal(pair)?), 1),
            Rule::current_timestamp => {
                (Expression::Function { name: "now".into(), args: vec![], distinct: false }, 1)
            }
            Rule::extract_expr => {
                let mut parts = pair.into_inner().filter(|p| !is_keyword(p.as_rule()));
                let field = parts.next().ok_or_else(|| invalid_grammar("EXTRACT"))?;
                let field = Expression::Literal(Value::String(field.as_str().to_ascii_lowercase()));
                let (expr, d) = nested(parts.next().ok_or_else(|| invalid_grammar("EXTRACT"))?)?;
                let args = vec![field, expr];
                (Expression::Function { name: "date_part".into(), args, distinct: false }, d + 1)
            }
            Rule::column_ref => {
                let mut parts = pair.into_inner();
                let first = identifier(parts.next().ok_or_else(|| invalid_grammar("column"))?)?;
                match parts.next() {
                    Some(second) => {
                        (Expression::Column { table: Some(first), name: identifier(second)? }, 1)
                    }
                    None => (Expression::Column { table: None, name: first }, 1),
                }
            }
            Rule::subquery | Rule::exists_expr => {
                let query = pair
                    .clone()
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::select)
                    .ok_or_else(|| invalid_grammar("subquery"))?;
                let query = Box::new(build_query(query.into_inner())?);
                match rule {
                    Rule::subquery => (Expression::Subquery(query), 1),
                    _ => (Expression::Exists(query), 1),
                }
            }
            Rule::paren => {
                let inner =
                    pair.into_inner().next().ok_or_else(|| invalid_grammar("parentheses"))?;
                let (expr, d) = nested(inner)?;
                (expr, d + 1)
            }
            Rule::count_star => {
                match pair.into_inner().find(|p| p.as_rule() == Rule::over_clause) {
                    None => (Expression::CountStar, 1),
                    Some(over) => {
                        let window = Box::new(build_window(over, depth)?);
                        (Expression::Window { name: "count".into(), args: Vec::new(), window }, 2)
                    }
                }
            }
            Rule::function_call => {
                let mut parts = pair.into_inner();
                let name = parts
                    .next()
                    .ok_or_else(|| invalid_grammar("function"))?
                    .as_str()
                    .to_ascii_lowercase();
                let mut distinct = false;
                let mut args = Vec::new();
                let mut deepest = 0;
                let mut window = None;
                for part in parts {
                    match part.as_rule() {
                        Rule::distinct => distinct = true,
                        Rule::kw_all | Rule::rparen => {}
                        Rule::over_clause => window = Some(Box::new(build_window(part, depth)?)),
                        _ => {
                            let (arg, d) = nested(part)?;
                            deepest = deepest.max(d);
                            args.push(arg);
                        }
                    }
                }
                match window {
                    Some(_) if distinct => {
                        return Err(error_at(
                            &position,
                            "DISTINCT is not allowed in a window function".into(),
                        ));
                    }
                    Some(window) => (Expression::Window { name, args, window }, deepest + 2),
                    None => (Expression::Function { name, args, distinct }, deepest + 1),
                }
            }
            Rule::cast_expr => {
                let mut parts = pair.into_inner().filter(|p| !is_keyword(p.as_rule()));
                let (expr, d) = nested(parts.next().ok_or_else(|| invalid_grammar("CAST"))?)?;
                let (datatype, _) =
                    build_data_type(parts.next().ok_or_else(|| invalid_grammar("CAST"))?)?;
                (Expression::Cast(Box::new(expr), datatype), d + 1)
            }
            Rule::case_expr => {
                let mut operand = None;
                let mut when = Vec::new();
                let mut otherwise = None;
                let mut deepest = 0;
                for part in pair.into_inner() {
                    match part.as_rule() {
                        Rule::case_operand | Rule::case_else => {
                            let is_operand = part.as_rule() == Rule::case_operand;
                            let inner = part.into_inner().find(|p| p.as_rule() == Rule::expr);
                            let (expr, d) = nested(inner.ok_or_else(|| invalid_grammar("CASE"))?)?;
                            deepest = deepest.max(d);
                            if is_operand {
                                operand = Some(Box::new(expr));
                            } else {
                                otherwise = Some(Box::new(expr));
                            }
                        }
                        Rule::case_when => {
                            let mut exprs = part.into_inner().filter(|p| p.as_rule() == Rule::expr);
                            let (condition, dc) =
                                nested(exprs.next().ok_or_else(|| invalid_grammar("WHEN"))?)?;
                            let (result, dr) =
                                nested(exprs.next().ok_or_else(|| invalid_grammar("THEN"))?)?;
                            deepest = deepest.max(dc).max(dr);
                            when.push((condition, result));
                        }
                        _ => {}
                    }
                }
                (Expression::Case { operand, when, otherwise }, deepest + 1)
            }
            _ => return Err(invalid_grammar("expression")),
        })
    })
}

/// Whether the text right after a `-` operator is the integer literal 9223372036854775808.
fn precedes_min_integer(op: &Pair<'_, Rule>) -> bool {
    let span = op.as_span();
    let rest = span.get_input()[span.end()..].trim_start();
    rest.strip_prefix("9223372036854775808").is_some_and(|after| {
        !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

/// The value of a numeric literal: an INTEGER if it fits, else a FLOAT.
fn number(pair: &Pair<'_, Rule>) -> Result<Value> {
    let text = pair.as_str();
    match text.parse::<i64>() {
        Ok(i) => Ok(Value::Integer(i)),
        Err(_) => text
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| error_at(pair, "invalid number".into())),
    }
}
