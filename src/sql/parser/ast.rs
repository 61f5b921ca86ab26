//! The abstract syntax tree: what the parser produces and the planner consumes.
//!
//! Identifiers are already normalized (unquoted names lower-cased), so the planner compares
//! names directly. The tree is plain data with no pest types in it.

use crate::sql::types::{ArithmeticOp, DataType, Value};
use serde::{Deserialize, Serialize};

#[path = "ast_users.rs"]
mod users;
pub use users::{Credential, UserStatement};

#[path = "ast_windows.rs"]
mod windows;
pub use windows::{FrameBound, WindowFrame, WindowSpec};

#[path = "ast_tables.rs"]
mod tables;
pub use tables::{TableChange, TableOption};

/// One SQL statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Statement {
    /// BEGIN [READ ONLY | READ WRITE] [AS OF SYSTEM TIME version].
    Begin {
        /// READ ONLY was given.
        read_only: bool,
        /// AS OF SYSTEM TIME: read the database as of this MVCC version.
        as_of: Option<u64>,
    },
    /// COMMIT.
    Commit,
    /// ROLLBACK.
    Rollback,
    /// CREATE VIEW [IF NOT EXISTS] name [(columns)] AS query.
    CreateView {
        /// The view's name.
        name: String,
        /// Names for its columns (none: the query's own).
        columns: Vec<String>,
        /// The query.
        query: Box<Select>,
        /// IF NOT EXISTS was given.
        if_not_exists: bool,
    },
    /// DROP VIEW [IF EXISTS] name.
    DropView {
        /// The view's name.
        name: String,
        /// IF EXISTS was given.
        if_exists: bool,
    },
    /// EXPLAIN statement: show the plan instead of running it.
    Explain(Box<Statement>),
    /// CREATE TABLE.
    CreateTable {
        /// The table name.
        name: String,
        /// The column definitions in order.
        columns: Vec<ColumnDef>,
        /// A table-level PRIMARY KEY (columns).
        primary_key: Option<Vec<String>>,
        /// Table-level UNIQUE (columns) constraints.
        unique: Vec<Vec<String>>,
        /// IF NOT EXISTS was given.
        if_not_exists: bool,
        /// WITH (name = value, ...).
        options: Vec<TableOption>,
    },
    /// CREATE ROLLUP name AS SELECT ... GROUP BY ... [WITH (ttl = ...)].
    CreateRollup {
        /// The rollup's name (the view it is read through).
        name: String,
        /// Its definition.
        query: Box<Select>,
        /// WITH (...): the state's retention.
        options: Vec<TableOption>,
        /// IF NOT EXISTS was given.
        if_not_exists: bool,
    },
    /// DROP ROLLUP.
    DropRollup {
        /// The rollup.
        name: String,
        /// IF EXISTS was given.
        if_exists: bool,
    },
    /// ALTER TABLE name SET (...) | RESET (...).
    AlterTable {
        /// The table name.
        name: String,
        /// What changes.
        change: TableChange,
    },
    /// DROP TABLE.
    DropTable {
        /// The table name.
        name: String,
        /// IF EXISTS was given.
        if_exists: bool,
    },
    /// CREATE [UNIQUE] INDEX name ON table (column).
    CreateIndex {
        /// The index name.
        name: String,
        /// The indexed table.
        table: String,
        /// The indexed columns (one is supported).
        columns: Vec<String>,
        /// UNIQUE was given.
        unique: bool,
        /// IF NOT EXISTS was given.
        if_not_exists: bool,
    },
    /// DROP INDEX.
    DropIndex {
        /// The index name.
        name: String,
        /// IF EXISTS was given.
        if_exists: bool,
    },
    /// ANALYZE [table]: measures the table's rows (or every table's) for the planner.
    Analyze {
        /// The table, if named.
        table: Option<String>,
    },
    /// REINDEX [index | table]: indexes are kept in step with their tables in every
    /// transaction, so there is nothing to rebuild; the name must exist.
    Reindex {
        /// The index or table, if named.
        name: Option<String>,
    },
    /// INSERT INTO table [(columns)] VALUES ... | SELECT ... | DEFAULT VALUES.
    Insert {
        /// The target table.
        table: String,
        /// The target columns, if listed.
        columns: Option<Vec<String>>,
        /// Where the rows come from.
        source: InsertSource,
        /// What to do with a row whose primary key is taken (none: an error).
        conflict: Option<OnConflict>,
        /// RETURNING: what to return of each row written (empty: a count).
        returning: Vec<SelectItem>,
    },
    /// UPDATE table SET column = expr, ... [WHERE].
    Update {
        /// The target table.
        table: String,
        /// The assignments in order.
        set: Vec<(String, Expression)>,
        /// The filter.
        filter: Option<Expression>,
        /// RETURNING: what to return of each row updated (empty: a count).
        returning: Vec<SelectItem>,
    },
    /// DELETE FROM table [WHERE].
    Delete {
        /// The target table.
        table: String,
        /// The filter.
        filter: Option<Expression>,
        /// RETURNING: what to return of each row deleted (empty: a count).
        returning: Vec<SelectItem>,
    },
    /// SELECT.
    Select(Box<Select>),
    /// CREATE/ALTER/DROP USER, GRANT, REVOKE.
    Users(UserStatement),
}

impl Statement {
    /// A short description: the statement's kind and target (`INSERT INTO t (3 rows)`).
    pub fn summary(&self) -> String {
        match self {
            Statement::Begin { read_only: true, as_of: Some(v) } => {
                format!("BEGIN READ ONLY AS OF {v}")
            }
            Statement::Begin { read_only: true, as_of: None } => "BEGIN READ ONLY".into(),
            Statement::Begin { .. } => "BEGIN".into(),
            Statement::Commit => "COMMIT".into(),
            Statement::Rollback => "ROLLBACK".into(),
            Statement::Explain(inner) => format!("EXPLAIN {}", inner.summary()),
            Statement::CreateTable { name, .. } => format!("CREATE TABLE {name}"),
            Statement::DropTable { name, .. } => format!("DROP TABLE {name}"),
            Statement::AlterTable { name, .. } => format!("ALTER TABLE {name}"),
            Statement::CreateRollup { name, .. } => format!("CREATE ROLLUP {name}"),
            Statement::DropRollup { name, .. } => format!("DROP ROLLUP {name}"),
            Statement::CreateIndex { name, table, .. } => format!("CREATE INDEX {name} ON {table}"),
            Statement::DropIndex { name, .. } => format!("DROP INDEX {name}"),
            Statement::Analyze { table } => format!("ANALYZE {}", table.as_deref().unwrap_or("")),
            Statement::Reindex { name } => format!("REINDEX {}", name.as_deref().unwrap_or("")),
            Statement::CreateView { name, .. } => format!("CREATE VIEW {name}"),
            Statement::DropView { name, .. } => format!("DROP VIEW {name}"),
            Statement::Insert { table, source: InsertSource::Values(rows), .. } => {
                let plural = if rows.len() == 1 { "" } else { "s" };
                format!("INSERT INTO {table} ({} row{plural})", rows.len())
            }
            Statement::Insert { table, .. } => format!("INSERT INTO {table}"),
            Statement::Update { table, .. } => format!("UPDATE {table}"),
            Statement::Delete { table, .. } => format!("DELETE FROM {table}"),
            Statement::Select(_) => "SELECT".into(),
            Statement::Users(UserStatement::Create { name, .. }) => format!("CREATE USER {name}"),
            Statement::Users(UserStatement::SetPassword { name, .. }) => {
                format!("ALTER USER {name}")
            }
            Statement::Users(UserStatement::Drop { name, .. }) => format!("DROP USER {name}"),
            Statement::Users(UserStatement::Grant { role, user }) => {
                format!("GRANT {role} TO {user}")
            }
            Statement::Users(UserStatement::Revoke { role, user }) => {
                format!("REVOKE {role} FROM {user}")
            }
        }
    }

    /// True for statements that never write (queries and transaction control).
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Statement::Select(_)
                | Statement::Begin { .. }
                | Statement::Commit
                | Statement::Rollback
                | Statement::Explain(_)
        )
    }
}

/// What an INSERT does with a row whose primary key is taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OnConflict {
    /// INSERT OR REPLACE, REPLACE INTO: the new row replaces the old one.
    Replace,
    /// INSERT OR IGNORE, ON CONFLICT [(target)] DO NOTHING: the new row is skipped.
    Ignore {
        /// The conflict target's columns (none: the primary key).
        target: Vec<String>,
    },
    /// ON CONFLICT [(target)] DO UPDATE SET .. [WHERE ..]: the old row is updated; the
    /// expressions read it by the table's name and the new row as `excluded`.
    Update {
        /// The conflict target's columns (none: the primary key).
        target: Vec<String>,
        /// The assignments.
        set: Vec<(String, Expression)>,
        /// Only rows for which this holds are updated (the others are skipped).
        filter: Option<Expression>,
    },
}

/// The rows of an INSERT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum InsertSource {
    /// VALUES (..), (..).
    Values(Vec<Vec<Expression>>),
    /// A query.
    Select(Box<Select>),
    /// DEFAULT VALUES: one row of defaults.
    DefaultValues,
}

/// A column definition in CREATE TABLE.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// The column name.
    pub name: String,
    /// The column type.
    pub datatype: DataType,
    /// VARCHAR(n): the declared length in characters (not enforced, as in SQLite).
    pub max_length: Option<u32>,
    /// PRIMARY KEY was given.
    pub primary_key: bool,
    /// NULL (`Some(true)`) or NOT NULL (`Some(false)`) was given.
    pub nullable: Option<bool>,
    /// UNIQUE was given.
    pub unique: bool,
    /// DEFAULT expression.
    pub default: Option<Expression>,
}

/// A SELECT query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Select {
    /// DISTINCT was given.
    pub distinct: bool,
    /// The select list.
    pub select: Vec<SelectItem>,
    /// The FROM items; several are cross-joined.
    pub from: Vec<FromItem>,
    /// WHERE.
    pub filter: Option<Expression>,
    /// GROUP BY.
    pub group_by: Vec<Expression>,
    /// HAVING.
    pub having: Option<Expression>,
    /// ORDER BY.
    pub order_by: Vec<OrderItem>,
    /// LIMIT.
    pub limit: Option<Expression>,
    /// OFFSET.
    pub offset: Option<Expression>,
    /// WITH: the common tables this query (and the tables after each) may read.
    pub with: Vec<CommonTable>,
    /// The SELECTs joined to this one by set operators, in order. In a compound query the
    /// ORDER BY, LIMIT and OFFSET above apply to the whole (the parser moves them here).
    pub compound: Vec<Compound>,
}

/// A common table of a WITH clause: a named query, read like a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommonTable {
    /// Its name.
    pub name: String,
    /// Names for its columns (none: the query's own).
    pub columns: Vec<String>,
    /// The query.
    pub query: Select,
    /// Declared by WITH RECURSIVE: its query may read it (see the planner's `recursive.rs`).
    pub recursive: bool,
}

/// A SELECT joined to a query by a set operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compound {
    /// The operator.
    pub op: SetOperator,
    /// The SELECT (without ORDER BY or LIMIT of its own).
    pub select: Select,
}

/// A set operator between queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetOperator {
    /// UNION [DISTINCT]: the rows of either, without duplicates.
    Union,
    /// UNION ALL: the rows of both.
    UnionAll,
    /// INTERSECT: the distinct rows of the left that the right has.
    Intersect,
    /// EXCEPT: the distinct rows of the left that the right does not have.
    Except,
}

/// One item of the select list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SelectItem {
    /// `*`: every column of every table.
    Wildcard,
    /// `table.*`.
    TableWildcard(String),
    /// An expression with an optional alias.
    Expression(Expression, Option<String>),
}

/// One item of a FROM clause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromItem {
    /// A table with an optional alias.
    Table {
        /// The table name.
        name: String,
        /// The alias.
        alias: Option<String>,
    },
    /// A query read like a table: `(SELECT ...) [AS] alias`.
    Query {
        /// The query.
        query: Box<Select>,
        /// The alias.
        alias: Option<String>,
    },
    /// A join of two items.
    Join {
        /// The left side.
        left: Box<FromItem>,
        /// The right side.
        right: Box<FromItem>,
        /// The kind of join.
        kind: JoinKind,
        /// The ON condition (absent for CROSS JOIN).
        on: Option<Expression>,
    },
    /// `generate_series(start, stop [, step]) [AS alias [(column)]]`: a column of values from
    /// start to stop (integers, or timestamps a step apart).
    Series {
        /// start, stop and step.
        args: Vec<Expression>,
        /// The alias.
        alias: Option<String>,
        /// The column's name.
        column: Option<String>,
    },
}

/// A kind of join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinKind {
    /// CROSS JOIN (or a comma).
    Cross,
    /// [INNER] JOIN.
    Inner,
    /// LEFT [OUTER] JOIN.
    Left,
}

/// An ORDER BY item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The sort expression (an output alias or position also appear as expressions).
    pub expr: Expression,
    /// DESC was given.
    pub descending: bool,
    /// NULLS FIRST (`Some(true)`) or NULLS LAST (`Some(false)`) was given.
    pub nulls_first: Option<bool>,
}

/// An expression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Expression {
    /// A constant.
    Literal(Value),
    /// A column reference, optionally qualified by a table name or alias.
    Column {
        /// The qualifier.
        table: Option<String>,
        /// The column name.
        name: String,
    },
    /// A unary operation.
    Unary(UnaryOp, Box<Expression>),
    /// A binary operation.
    Binary(BinaryOp, Box<Expression>, Box<Expression>),
    /// expr IS [NOT] NULL.
    IsNull {
        /// The operand.
        expr: Box<Expression>,
        /// IS NOT NULL.
        negated: bool,
    },
    /// expr [NOT] IN (list).
    InList {
        /// The operand.
        expr: Box<Expression>,
        /// The list.
        list: Vec<Expression>,
        /// NOT IN.
        negated: bool,
    },
    /// expr [NOT] BETWEEN low AND high.
    Between {
        /// The operand.
        expr: Box<Expression>,
        /// The lower bound.
        low: Box<Expression>,
        /// The upper bound.
        high: Box<Expression>,
        /// NOT BETWEEN.
        negated: bool,
    },
    /// expr [NOT] LIKE pattern.
    Like {
        /// The operand.
        expr: Box<Expression>,
        /// The pattern.
        pattern: Box<Expression>,
        /// NOT LIKE.
        negated: bool,
    },
    /// CASE [operand] WHEN .. THEN .. [ELSE ..] END.
    Case {
        /// The operand compared with each WHEN value (simple CASE).
        operand: Option<Box<Expression>>,
        /// The WHEN/THEN pairs.
        when: Vec<(Expression, Expression)>,
        /// The ELSE result.
        otherwise: Option<Box<Expression>>,
    },
    /// CAST(expr AS type).
    Cast(Box<Expression>, DataType),
    /// A function call: scalar (ABS, ...) or aggregate (COUNT, ...).
    Function {
        /// The lower-cased function name.
        name: String,
        /// The arguments.
        args: Vec<Expression>,
        /// DISTINCT was given (aggregates).
        distinct: bool,
    },
    /// COUNT(*).
    CountStar,
    /// `(SELECT ...)`: the value of a one-column query's only row (NULL for none).
    Subquery(Box<Select>),
    /// `EXISTS (SELECT ...)`: whether the query has a row.
    Exists(Box<Select>),
    /// `expr [NOT] IN (SELECT ...)`, with IN's NULL semantics.
    InSubquery {
        /// The operand.
        expr: Box<Expression>,
        /// The one-column query.
        query: Box<Select>,
        /// NOT IN.
        negated: bool,
    },
    // Appended last: expressions are stored (views, rollups) by variant position.
    /// A window function call: `name(args) OVER (...)` (`count(*) OVER` has no arguments).
    Window {
        /// The function's name, lower-cased.
        name: String,
        /// The arguments.
        args: Vec<Expression>,
        /// The window.
        window: Box<WindowSpec>,
    },
}

impl Expression {
    /// The expression's direct subexpressions (not those inside subqueries).
    pub fn children_mut(&mut self) -> Vec<&mut Expression> {
        match self {
            Expression::Literal(_)
            | Expression::Column { .. }
            | Expression::CountStar
            | Expression::Subquery(_)
            | Expression::Exists(_) => vec![],
            Expression::Unary(_, e) | Expression::Cast(e, _) => vec![e],
            Expression::Binary(_, a, b) => vec![a, b],
            Expression::IsNull { expr, .. } | Expression::InSubquery { expr, .. } => vec![expr],
            Expression::InList { expr, list, .. } => {
                std::iter::once(expr.as_mut()).chain(list.iter_mut()).collect()
            }
            Expression::Between { expr, low, high, .. } => vec![expr, low, high],
            Expression::Like { expr, pattern, .. } => vec![expr, pattern],
            Expression::Case { operand, when, otherwise } => operand
                .iter_mut()
                .map(|e| e.as_mut())
                .chain(when.iter_mut().flat_map(|(w, t)| [w, t]))
                .chain(otherwise.iter_mut().map(|e| e.as_mut()))
                .collect(),
            Expression::Function { args, .. } => args.iter_mut().collect(),
            Expression::Window { args, window, .. } => args
                .iter_mut()
                .chain(window.partition_by.iter_mut())
                .chain(window.order_by.iter_mut().map(|o| &mut o.expr))
                .collect(),
        }
    }
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnaryOp {
    /// NOT.
    Not,
    /// `-`.
    Negate,
    /// `+`.
    Plus,
}

/// Binary operators (displayed as their SQL symbol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinaryOp {
    /// OR.
    Or,
    /// AND.
    And,
    /// `=`.
    Equal,
    /// `<>` or `!=`.
    NotEqual,
    /// `<`.
    Less,
    /// `<=`.
    LessOrEqual,
    /// `>`.
    Greater,
    /// `>=`.
    GreaterOrEqual,
    /// `||`.
    Concat,
    /// An arithmetic operator.
    Arithmetic(ArithmeticOp),
}

/// An operand in rendered SQL: parenthesized when it is itself an operation, so the text
/// parses back to the same tree.
struct Operand<'a>(&'a Expression);

impl std::fmt::Display for Operand<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Expression::Binary(..)
            | Expression::IsNull { .. }
            | Expression::InList { .. }
            | Expression::Between { .. }
            | Expression::Like { .. }
            | Expression::Unary(UnaryOp::Not, _) => write!(f, "({})", self.0),
            other => write!(f, "{other}"),
        }
    }
}

impl std::fmt::Display for Expression {
    /// Renders the expression as SQL (used to name unaliased result columns).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::sql::with_stack(|| self.render(f))
    }
}

impl Expression {
    fn render(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let not = |negated: &bool| if *negated { "NOT " } else { "" };
        match self {
            Expression::Literal(value) => f.write_str(&value.to_sql()),
            Expression::Column { table: Some(table), name } => write!(f, "{table}.{name}"),
            Expression::Column { table: None, name } => f.write_str(name),
            Expression::Subquery(_) => f.write_str("(subquery)"),
            Expression::Exists(_) => f.write_str("EXISTS (subquery)"),
            Expression::InSubquery { expr, negated, .. } => {
                write!(f, "{expr} {}IN (subquery)", not(negated))
            }
            Expression::Unary(UnaryOp::Not, e) => write!(f, "NOT {}", Operand(e)),
            Expression::Unary(UnaryOp::Negate, e) => write!(f, "-{}", Operand(e)),
            Expression::Unary(UnaryOp::Plus, e) => write!(f, "+{}", Operand(e)),
            Expression::Binary(op, a, b) => write!(f, "{} {op} {}", Operand(a), Operand(b)),
            Expression::IsNull { expr, negated } => {
                write!(f, "{} IS {}NULL", Operand(expr), not(negated))
            }
            Expression::InList { expr, list, negated } => {
                let items: Vec<String> = list.iter().map(|e| e.to_string()).collect();
                write!(f, "{} {}IN ({})", Operand(expr), not(negated), items.join(", "))
            }
            Expression::Between { expr, low, high, negated } => {
                write!(
                    f,
                    "{} {}BETWEEN {} AND {}",
                    Operand(expr),
                    not(negated),
                    Operand(low),
                    Operand(high)
                )
            }
            Expression::Like { expr, pattern, negated } => {
                write!(f, "{} {}LIKE {}", Operand(expr), not(negated), Operand(pattern))
            }
            Expression::Case { operand, when, otherwise } => {
                f.write_str("CASE")?;
                if let Some(operand) = operand {
                    write!(f, " {operand}")?;
                }
                for (condition, result) in when {
                    write!(f, " WHEN {condition} THEN {result}")?;
                }
                if let Some(otherwise) = otherwise {
                    write!(f, " ELSE {otherwise}")?;
                }
                f.write_str(" END")
            }
            Expression::Cast(e, datatype) => write!(f, "CAST({e} AS {datatype})"),
            Expression::Function { name, args, distinct } => {
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                write!(f, "{name}({}{})", if *distinct { "DISTINCT " } else { "" }, args.join(", "))
            }
            Expression::CountStar => f.write_str("count(*)"),
            Expression::Window { name, args, window } => {
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                write!(f, "{name}({}) {window}", args.join(", "))
            }
        }
    }
}

impl std::fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BinaryOp::Or => f.write_str("OR"),
            BinaryOp::And => f.write_str("AND"),
            BinaryOp::Equal => f.write_str("="),
            BinaryOp::NotEqual => f.write_str("<>"),
            BinaryOp::Less => f.write_str("<"),
            BinaryOp::LessOrEqual => f.write_str("<="),
            BinaryOp::Greater => f.write_str(">"),
            BinaryOp::GreaterOrEqual => f.write_str(">="),
            BinaryOp::Concat => f.write_str("||"),
            BinaryOp::Arithmetic(op) => write!(f, "{op}"),
        }
    }
}
