//! Execution plans: what the planner produces and the executor runs.
//!
//! A [`Plan`] is one statement. Queries are trees of [`Node`]s; each node yields rows, and its
//! expressions refer to the columns of its input row by position ([`Expression::Column`]).

use super::super::engine::{Index, Table, View};
use crate::sql::parser::ast::{BinaryOp, SetOperator, UnaryOp};
use crate::sql::types::{DataType, Value};
use std::fmt::{self, Write as _};
use std::ops::Bound;

/// A planned statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// CREATE TABLE.
    CreateTable {
        /// The schema to create.
        schema: Table,
        /// Succeed quietly if the table exists.
        if_not_exists: bool,
    },
    /// CREATE VIEW.
    CreateView {
        /// The view.
        view: View,
        /// Succeed quietly if a table or view of its name exists.
        if_not_exists: bool,
    },
    /// DROP VIEW.
    DropView {
        /// The view.
        name: String,
        /// Succeed quietly if it does not exist.
        if_exists: bool,
    },
    /// DROP TABLE.
    DropTable {
        /// The table.
        name: String,
        /// Succeed quietly if it does not exist.
        if_exists: bool,
    },
    /// CREATE INDEX.
    CreateIndex {
        /// The indexed table.
        table: String,
        /// The index to create.
        index: Index,
        /// Succeed quietly if the index exists.
        if_not_exists: bool,
    },
    /// DROP INDEX.
    DropIndex {
        /// The index.
        name: String,
        /// Succeed quietly if it does not exist.
        if_exists: bool,
    },
    /// INSERT: `source` yields rows of `columns.len()` values, placed into those columns;
    /// the other columns get their defaults.
    Insert {
        /// The target table.
        table: Table,
        /// The target column of each source value.
        columns: Vec<usize>,
        /// The rows to insert.
        source: Node,
        /// What to do with a row whose primary key is taken.
        conflict: Conflict,
    },
    /// UPDATE: `source` yields the rows to change, each followed by its row key.
    Update {
        /// The target table.
        table: Table,
        /// The rows to update (values, then the key).
        source: Node,
        /// Column assignments, evaluated against the old row.
        set: Vec<(usize, Expression)>,
    },
    /// DELETE: `source` yields the rows to delete, each followed by its row key.
    Delete {
        /// The target table.
        table: Table,
        /// The rows to delete (values, then the key).
        source: Node,
    },
    /// SELECT.
    Select {
        /// The root of the query tree.
        root: Node,
        /// The output columns.
        columns: Vec<OutputColumn>,
    },
}

/// An output column of a query.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutputColumn {
    /// The column's name (alias, column name, or the expression's text).
    pub name: String,
    /// The type of its values, when known from the plan.
    pub datatype: Option<DataType>,
}

/// A node of a query tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// Reads the rows of a table whose keys fall in `access`.
    Scan {
        /// The table.
        table: Table,
        /// The table's alias in the query, for EXPLAIN.
        alias: Option<String>,
        /// Which rows to read.
        access: Access,
        /// A filter applied to each row read.
        filter: Option<Expression>,
        /// Append each row's key as an extra last column (for UPDATE and DELETE).
        with_key: bool,
    },
    /// Keeps the rows for which the predicate is true.
    Filter {
        /// The input.
        source: Box<Node>,
        /// The condition.
        predicate: Expression,
    },
    /// Computes new columns from each row.
    Projection {
        /// The input.
        source: Box<Node>,
        /// One expression per output column.
        expressions: Vec<Expression>,
    },
    /// Groups rows and computes aggregates: yields the group values followed by the
    /// aggregate values, one row per group (ordered by group values), or one row when there is
    /// no GROUP BY.
    Aggregate {
        /// The input.
        source: Box<Node>,
        /// The GROUP BY expressions.
        group_by: Vec<Expression>,
        /// The aggregates.
        aggregates: Vec<Aggregate>,
    },
    /// Sorts rows (stable).
    Order {
        /// The input.
        source: Box<Node>,
        /// The sort keys, most significant first.
        keys: Vec<SortKey>,
    },
    /// Skips rows.
    Offset {
        /// The input.
        source: Box<Node>,
        /// How many rows to skip.
        offset: u64,
    },
    /// Stops after some rows.
    Limit {
        /// The input.
        source: Box<Node>,
        /// How many rows to yield.
        limit: u64,
    },
    /// Removes duplicate rows, keeping the first of each.
    Distinct {
        /// The input.
        source: Box<Node>,
    },
    /// Joins every left row with every right row that satisfies the predicate.
    NestedLoopJoin {
        /// The outer input.
        left: Box<Node>,
        /// The inner input (materialized).
        right: Box<Node>,
        /// The number of columns of the right input (for LEFT JOIN padding).
        right_width: usize,
        /// The join condition over the combined row.
        predicate: Option<Expression>,
        /// LEFT JOIN: keep unmatched left rows, padded with NULLs.
        outer: bool,
    },
    /// An equi-join through a hash table on the right input.
    HashJoin {
        /// The probing input.
        left: Box<Node>,
        /// The join column of the left input.
        left_column: usize,
        /// The hashed input.
        right: Box<Node>,
        /// The join column of the right input.
        right_column: usize,
        /// The number of columns of the right input.
        right_width: usize,
        /// LEFT JOIN: keep unmatched left rows, padded with NULLs.
        outer: bool,
    },
    /// Constant rows (VALUES, or one empty row for SELECT without FROM).
    Values {
        /// The rows.
        rows: Vec<Vec<Expression>>,
    },
    /// Two queries' rows combined by a set operator (rows are equal when every value is, NULLs
    /// included). The left's rows come first and in their order; the set operators other than
    /// UNION ALL keep the first of equal rows.
    SetOperation {
        /// The operator.
        op: SetOperator,
        /// The left query.
        left: Box<Node>,
        /// The right query (as wide as the left).
        right: Box<Node>,
    },
}

/// The most keys (or constant rows) a short plan reads.
pub const SHORT_PLAN_KEYS: usize = 16;

impl Node {
    /// Whether the tree reads at most [`SHORT_PLAN_KEYS`] rows by primary key (or constant
    /// rows) and joins nothing: cheap whatever the size of the table.
    pub fn is_short(&self) -> bool {
        match self {
            Node::Scan { access: Access::Keys(keys), .. } => keys.len() <= SHORT_PLAN_KEYS,
            Node::Values { rows } => rows.len() <= SHORT_PLAN_KEYS,
            Node::Scan { .. }
            | Node::NestedLoopJoin { .. }
            | Node::HashJoin { .. }
            | Node::SetOperation { .. } => false,
            node => node.children().iter().all(|child| child.is_short()),
        }
    }

    /// The node's inputs, left to right.
    pub fn children(&self) -> Vec<&Node> {
        match self {
            Node::Filter { source, .. }
            | Node::Projection { source, .. }
            | Node::Aggregate { source, .. }
            | Node::Order { source, .. }
            | Node::Offset { source, .. }
            | Node::Limit { source, .. }
            | Node::Distinct { source } => vec![source],
            Node::NestedLoopJoin { left, right, .. }
            | Node::HashJoin { left, right, .. }
            | Node::SetOperation { left, right, .. } => vec![left, right],
            Node::Scan { .. } | Node::Values { .. } => vec![],
        }
    }
}

/// What an INSERT does with a row whose primary key is taken.
#[derive(Clone, Debug, PartialEq)]
pub enum Conflict {
    /// Fail the statement.
    Error,
    /// Replace the old row with the new one.
    Replace,
    /// Skip the new row.
    Ignore,
    /// Update the old row: the expressions read the old row's columns followed by the new
    /// row's (`excluded`); rows for which `filter` does not hold are skipped.
    Update {
        /// The assignments (column, value).
        set: Vec<(usize, Expression)>,
        /// The condition.
        filter: Option<Expression>,
    },
}

/// How a scan finds its rows.
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    /// Every row, in key order.
    Full,
    /// The rows with these primary keys.
    Keys(Vec<Value>),
    /// The rows whose primary keys fall in a range.
    KeyRange(Bound<Value>, Bound<Value>),
    /// The rows whose indexed column has one of these values.
    Index {
        /// The index used.
        index: Index,
        /// The values looked up.
        values: Vec<Value>,
    },
}

/// An aggregate function call.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    /// The function.
    pub function: AggregateFunction,
    /// The argument (`None` for COUNT(*)).
    pub arg: Option<Expression>,
    /// Aggregate distinct values only.
    pub distinct: bool,
    /// GROUP_CONCAT's separator, evaluated for each value after the first (`None`: a comma).
    pub separator: Option<Expression>,
}

/// Aggregate functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateFunction {
    /// COUNT: the number of non-NULL values (or rows, for COUNT(*)).
    Count,
    /// SUM: NULL for no values.
    Sum,
    /// AVG: a FLOAT, NULL for no values.
    Avg,
    /// MIN.
    Min,
    /// MAX.
    Max,
    /// GROUP_CONCAT (STRING_AGG): the values as text, in input order, joined by a separator;
    /// NULL for no values.
    GroupConcat,
}

/// A sort key.
#[derive(Clone, Debug, PartialEq)]
pub struct SortKey {
    /// The value sorted by.
    pub expr: Expression,
    /// Descending order.
    pub descending: bool,
    /// NULLs sort before other values.
    pub nulls_first: bool,
}

/// Scalar functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarFunction {
    /// ABS(x).
    Abs,
    /// COALESCE(x, ...): the first non-NULL argument.
    Coalesce,
    /// LENGTH(s): characters.
    Length,
    /// UPPER(s).
    Upper,
    /// LOWER(s).
    Lower,
    /// ROUND(x [, digits]).
    Round,
    /// NULLIF(a, b): NULL if a = b, else a.
    NullIf,
    /// SUBSTR(s, start [, length]) (SUBSTRING): characters, from 1; a negative start counts
    /// from the end, a negative length takes the characters before start (as SQLite).
    Substr,
    /// INSTR(s, sub): the position of sub's first occurrence in characters, from 1; 0 if none.
    Instr,
    /// TRIM(s [, chars]): s without the given characters (blanks by default) at both ends.
    Trim,
    /// LTRIM(s [, chars]): ... at the start.
    LTrim,
    /// RTRIM(s [, chars]): ... at the end.
    RTrim,
    /// REPLACE(s, from, to): every occurrence of from replaced (s itself if from is empty).
    Replace,
    /// PRINTF(format, ...) (FORMAT): SQLite's printf (`%d %i %u %f %e %g %x %X %o %c %s %q %%`,
    /// with flags, width and precision).
    Printf,
    /// TYPEOF(x): 'null', 'integer', 'real', 'text' or 'boolean'.
    TypeOf,
    /// MIN(a, b, ...): the least argument; NULL if any is NULL.
    Least,
    /// MAX(a, b, ...): the greatest argument; NULL if any is NULL.
    Greatest,
}

impl ScalarFunction {
    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            ScalarFunction::Abs => "abs",
            ScalarFunction::Coalesce => "coalesce",
            ScalarFunction::Length => "length",
            ScalarFunction::Upper => "upper",
            ScalarFunction::Lower => "lower",
            ScalarFunction::Round => "round",
            ScalarFunction::NullIf => "nullif",
            ScalarFunction::Substr => "substr",
            ScalarFunction::Instr => "instr",
            ScalarFunction::Trim => "trim",
            ScalarFunction::LTrim => "ltrim",
            ScalarFunction::RTrim => "rtrim",
            ScalarFunction::Replace => "replace",
            ScalarFunction::Printf => "printf",
            ScalarFunction::TypeOf => "typeof",
            ScalarFunction::Least => "min",
            ScalarFunction::Greatest => "max",
        }
    }
}

/// An expression over the columns of an input row.
#[derive(Clone, Debug, PartialEq)]
pub enum Expression {
    /// A constant.
    Constant(Value),
    /// The input column at this position, with its name for display.
    Column(usize, String),
    /// A unary operation.
    Unary(UnaryOp, Box<Expression>),
    /// A binary operation.
    Binary(BinaryOp, Box<Expression>, Box<Expression>),
    /// IS [NOT] NULL.
    IsNull(Box<Expression>, bool),
    /// [NOT] IN (list).
    InList(Box<Expression>, Vec<Expression>, bool),
    /// [NOT] BETWEEN low AND high.
    Between(Box<Expression>, Box<Expression>, Box<Expression>, bool),
    /// [NOT] LIKE pattern.
    Like(Box<Expression>, Box<Expression>, bool),
    /// CASE [operand] WHEN .. THEN .. [ELSE ..] END.
    Case(Option<Box<Expression>>, Vec<(Expression, Expression)>, Option<Box<Expression>>),
    /// CAST.
    Cast(Box<Expression>, DataType),
    /// A scalar function call.
    Function(ScalarFunction, Vec<Expression>),
}

impl Expression {
    /// Calls `visit` on this expression and every subexpression, stopping early if it
    /// returns false. Returns false if stopped.
    pub fn walk(&self, visit: &mut impl FnMut(&Expression) -> bool) -> bool {
        crate::sql::with_stack(|| {
            if !visit(self) {
                return false;
            }
            use Expression::*;
            match self {
                Constant(_) | Column(..) => true,
                Unary(_, e) | IsNull(e, _) | Cast(e, _) => e.walk(visit),
                Binary(_, a, b) | Like(a, b, _) => a.walk(visit) && b.walk(visit),
                Between(a, b, c, _) => a.walk(visit) && b.walk(visit) && c.walk(visit),
                InList(e, list, _) => e.walk(visit) && list.iter().all(|i| i.walk(visit)),
                Function(_, args) => args.iter().all(|a| a.walk(visit)),
                Case(operand, when, otherwise) => {
                    operand.as_ref().is_none_or(|o| o.walk(visit))
                        && when.iter().all(|(w, t)| w.walk(visit) && t.walk(visit))
                        && otherwise.as_ref().is_none_or(|o| o.walk(visit))
                }
            }
        })
    }

    /// Rewrites every column reference with `map` (used when moving an expression to another
    /// node's input).
    pub fn map_columns(self, map: &impl Fn(usize) -> usize) -> Expression {
        crate::sql::with_stack(|| {
            use Expression::*;
            let m = |e: Box<Expression>| Box::new(e.map_columns(map));
            match self {
                Constant(v) => Constant(v),
                Column(i, name) => Column(map(i), name),
                Unary(op, e) => Unary(op, m(e)),
                Binary(op, a, b) => Binary(op, m(a), m(b)),
                IsNull(e, n) => IsNull(m(e), n),
                InList(e, list, n) => {
                    InList(m(e), list.into_iter().map(|i| i.map_columns(map)).collect(), n)
                }
                Between(a, b, c, n) => Between(m(a), m(b), m(c), n),
                Like(a, b, n) => Like(m(a), m(b), n),
                Case(o, when, e) => Case(
                    o.map(m),
                    when.into_iter()
                        .map(|(w, t)| (w.map_columns(map), t.map_columns(map)))
                        .collect(),
                    e.map(m),
                ),
                Cast(e, t) => Cast(m(e), t),
                Function(f, args) => {
                    Function(f, args.into_iter().map(|a| a.map_columns(map)).collect())
                }
            }
        })
    }

    /// The input columns the expression reads.
    pub fn columns(&self) -> Vec<usize> {
        let mut columns = Vec::new();
        self.walk(&mut |e| {
            if let Expression::Column(i, _) = e {
                columns.push(*i);
            }
            true
        });
        columns
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::sql::with_stack(|| self.render(f))
    }
}

impl Expression {
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Expression::*;
        let not = |negated: &bool| if *negated { "NOT " } else { "" };
        match self {
            Constant(v) => write!(f, "{}", v.to_sql()),
            Column(_, name) => f.write_str(name),
            Unary(UnaryOp::Not, e) => write!(f, "NOT {e}"),
            Unary(UnaryOp::Negate, e) => write!(f, "-{e}"),
            Unary(UnaryOp::Plus, e) => write!(f, "+{e}"),
            Binary(op, a, b) => write!(f, "({a} {op} {b})"),
            IsNull(e, negated) => write!(f, "{e} IS {}NULL", not(negated)),
            InList(e, list, negated) => {
                let items: Vec<String> = list.iter().map(|i| i.to_string()).collect();
                write!(f, "{e} {}IN ({})", not(negated), items.join(", "))
            }
            Between(e, low, high, negated) => {
                write!(f, "{e} {}BETWEEN {low} AND {high}", not(negated))
            }
            Like(e, pattern, negated) => write!(f, "{e} {}LIKE {pattern}", not(negated)),
            Case(operand, when, otherwise) => {
                f.write_str("CASE")?;
                if let Some(operand) = operand {
                    write!(f, " {operand}")?;
                }
                for (w, t) in when {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(otherwise) = otherwise {
                    write!(f, " ELSE {otherwise}")?;
                }
                f.write_str(" END")
            }
            Cast(e, t) => write!(f, "CAST({e} AS {t})"),
            Function(function, args) => {
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                write!(f, "{}({})", function.name().to_uppercase(), args.join(", "))
            }
        }
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.function {
            AggregateFunction::GroupConcat => "GROUP_CONCAT".to_string(),
            function => format!("{function:?}").to_uppercase(),
        };
        let distinct = if self.distinct { "DISTINCT " } else { "" };
        match (&self.arg, &self.separator) {
            (None, _) => write!(f, "{name}(*)"),
            (Some(arg), None) => write!(f, "{name}({distinct}{arg})"),
            (Some(arg), Some(separator)) => write!(f, "{name}({distinct}{arg}, {separator})"),
        }
    }
}

impl Plan {
    /// Renders the plan as an indented tree, one node per line (EXPLAIN).
    pub fn explain(&self) -> String {
        let mut out = String::new();
        match self {
            Plan::Select { root, .. } => root.explain(&mut out, "", ""),
            Plan::Insert { table, source, .. } => {
                let _ = writeln!(out, "Insert: {}", table.name);
                source.explain(&mut out, "└─ ", "   ");
            }
            Plan::Update { table, source, set } => {
                let set: Vec<String> =
                    set.iter().map(|(i, e)| format!("{} = {e}", table.columns[*i].name)).collect();
                let _ = writeln!(out, "Update: {} ({})", table.name, set.join(", "));
                source.explain(&mut out, "└─ ", "   ");
            }
            Plan::Delete { table, source } => {
                let _ = writeln!(out, "Delete: {}", table.name);
                source.explain(&mut out, "└─ ", "   ");
            }
            other => {
                let _ = writeln!(
                    out,
                    "{}",
                    format!("{other:?}").split([' ', '{']).next().unwrap_or("Statement")
                );
            }
        }
        out.trim_end().to_string()
    }
}

impl Node {
    fn explain(&self, out: &mut String, prefix: &str, indent: &str) {
        let list = |exprs: &[Expression]| {
            exprs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
        };
        let line = match self {
            Node::Scan { table, alias, access, filter, .. } => {
                let name = match alias {
                    Some(alias) if alias != &table.name => format!("{} AS {alias}", table.name),
                    _ => table.name.clone(),
                };
                let key = table
                    .primary_key
                    .map_or("rowid".to_string(), |k| table.columns[k].name.clone());
                let mut line = match access {
                    Access::Full => format!("Scan: {name}"),
                    Access::Keys(keys) => {
                        let keys: Vec<String> = keys.iter().map(|k| k.to_sql()).collect();
                        format!("KeyLookup: {name} ({key} IN {})", keys.join(", "))
                    }
                    Access::KeyRange(start, end) => {
                        format!("KeyRange: {name} ({})", describe_range(&key, start, end))
                    }
                    Access::Index { index, values } => {
                        let values: Vec<String> = values.iter().map(|v| v.to_sql()).collect();
                        let column = &table.columns[index.column].name;
                        format!(
                            "IndexLookup: {name} via {} ({column} IN {})",
                            index.name,
                            values.join(", ")
                        )
                    }
                };
                if let Some(filter) = filter {
                    let _ = write!(line, " filter {filter}");
                }
                line
            }
            Node::Filter { predicate, .. } => format!("Filter: {predicate}"),
            Node::Projection { expressions, .. } => format!("Projection: {}", list(expressions)),
            Node::Aggregate { group_by, aggregates, .. } => {
                let aggs: Vec<String> = aggregates.iter().map(|a| a.to_string()).collect();
                match group_by.is_empty() {
                    true => format!("Aggregate: {}", aggs.join(", ")),
                    false => format!("Aggregate: {} group by {}", aggs.join(", "), list(group_by)),
                }
            }
            Node::Order { keys, .. } => {
                let keys: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{} {}", k.expr, if k.descending { "DESC" } else { "ASC" }))
                    .collect();
                format!("Order: {}", keys.join(", "))
            }
            Node::Offset { offset, .. } => format!("Offset: {offset}"),
            Node::Limit { limit, .. } => format!("Limit: {limit}"),
            Node::Distinct { .. } => "Distinct".to_string(),
            Node::NestedLoopJoin { predicate, outer, .. } => {
                let kind = if *outer { "left " } else { "" };
                match predicate {
                    Some(p) => format!("NestedLoopJoin: {kind}on {p}"),
                    None => format!("NestedLoopJoin: {kind}cross"),
                }
            }
            Node::HashJoin { left_column, right_column, outer, .. } => {
                let kind = if *outer { "left " } else { "" };
                format!("HashJoin: {kind}on left #{left_column} = right #{right_column}")
            }
            Node::Values { rows } => format!("Values: {} row(s)", rows.len()),
            Node::SetOperation { op, .. } => match op {
                SetOperator::Union => "Union".to_string(),
                SetOperator::UnionAll => "Union: all".to_string(),
                SetOperator::Intersect => "Intersect".to_string(),
                SetOperator::Except => "Except".to_string(),
            },
        };
        let _ = writeln!(out, "{prefix}{line}");
        let children = self.children();
        let count = children.len();
        for (i, child) in children.into_iter().enumerate() {
            let last = i + 1 == count;
            let child_prefix = format!("{indent}{}", if last { "└─ " } else { "├─ " });
            let child_indent = format!("{indent}{}", if last { "   " } else { "│  " });
            child.explain(out, &child_prefix, &child_indent);
        }
    }
}

fn describe_range(key: &str, start: &Bound<Value>, end: &Bound<Value>) -> String {
    let mut parts = Vec::new();
    match start {
        Bound::Included(v) => parts.push(format!("{key} >= {}", v.to_sql())),
        Bound::Excluded(v) => parts.push(format!("{key} > {}", v.to_sql())),
        Bound::Unbounded => {}
    }
    match end {
        Bound::Included(v) => parts.push(format!("{key} <= {}", v.to_sql())),
        Bound::Excluded(v) => parts.push(format!("{key} < {}", v.to_sql())),
        Bound::Unbounded => {}
    }
    parts.join(" AND ")
}
