//! Execution plans: what the planner produces and the executor runs.
//!
//! A [`Plan`] is one statement. Queries are trees of [`Node`]s; each node yields rows, and its
//! expressions refer to the columns of its input row by position ([`Expression::Column`]).

use super::super::engine::{Index, Table, View};
use crate::sql::parser::ast::{BinaryOp, SetOperator, UnaryOp};
use crate::sql::types::{DataType, Value};
use std::fmt;
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
    /// CREATE ROLLUP: the state table, the view, and the definition kept in the source's
    /// schema; existing rows are rolled up as it is created.
    CreateRollup {
        /// The table whose inserted rows feed it.
        source: String,
        /// The definition, in terms of the source's columns.
        rollup: Box<crate::sql::engine::Rollup>,
        /// The state table.
        state: Box<Table>,
        /// The view it is read through.
        view: Box<View>,
        /// Succeed quietly if it exists.
        if_not_exists: bool,
    },
    /// DROP ROLLUP.
    DropRollup {
        /// The rollup.
        name: String,
        /// Succeed quietly if it does not exist.
        if_exists: bool,
    },
    /// ALTER TABLE ... SET/RESET: the table's retention after the change.
    AlterTable {
        /// The table.
        name: String,
        /// Its TTL (`None`: rows are kept).
        ttl: Option<crate::sql::engine::Ttl>,
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
    /// ANALYZE: measures these tables and stores what it found in their schemas.
    Analyze {
        /// The tables, by name.
        tables: Vec<String>,
    },
    /// CREATE/ALTER/DROP USER, GRANT, REVOKE.
    Users(crate::sql::parser::ast::UserStatement),
    /// REINDEX: checks the name (an index or table) and changes nothing.
    Reindex {
        /// The index or table named (empty for all).
        name: String,
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
        /// What to return of each row written.
        returning: Option<Returning>,
    },
    /// UPDATE: `source` yields the rows to change, each followed by its row key.
    Update {
        /// The target table.
        table: Table,
        /// The rows to update (values, then the key).
        source: Node,
        /// Column assignments, evaluated against the old row.
        set: Vec<(usize, Expression)>,
        /// What to return of each row updated (its new values).
        returning: Option<Returning>,
    },
    /// DELETE: `source` yields the rows to delete, each followed by its row key.
    Delete {
        /// The target table.
        table: Table,
        /// The rows to delete (values, then the key).
        source: Node,
        /// What to return of each row deleted.
        returning: Option<Returning>,
    },
    /// SELECT.
    Select {
        /// The root of the query tree.
        root: Node,
        /// The output columns.
        columns: Vec<OutputColumn>,
    },
}

/// A write's RETURNING list: expressions over the table's row, yielded as a query's rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Returning {
    /// One expression per output column, over a row of the table.
    pub expressions: Vec<Expression>,
    /// The output columns.
    pub columns: Vec<OutputColumn>,
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
        /// The table (boxed: a schema is large beside the other nodes).
        table: Box<Table>,
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
    /// `generate_series`: one row per value from `start` to `stop` (inclusive) by `step`.
    Series {
        /// The first value (an INTEGER or a TIMESTAMP).
        start: Value,
        /// The last value the series may reach.
        stop: Value,
        /// The step (an INTEGER, or an INTERVAL for timestamps; nonzero).
        step: Value,
    },
    /// Appends to each input row one column per window function (rows keep their order).
    Window {
        /// The input.
        source: Box<Node>,
        /// The window functions.
        functions: Vec<WindowFunction>,
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
    /// Runs a correlated subquery for each input row: the subquery's outer references
    /// ([`Expression::Outer`]) take the values of `params` on that row, and the row is
    /// yielded with the subquery's result (per `kind`) appended as a last column. Equal
    /// parameter values share one run.
    Apply {
        /// The input.
        source: Box<Node>,
        /// The subquery, with outer references numbered into `params`.
        subquery: Box<Node>,
        /// The values of the outer references, over the input row.
        params: Vec<Expression>,
        /// What the appended column holds.
        kind: ApplyKind,
        /// The appended column's name, for EXPLAIN.
        label: String,
    },
    /// A correlated EXISTS, NOT EXISTS or IN turned into a join (decorrelated): yields the left
    /// rows for which some right row equals `left_keys` (or, `anti`, none does). The right
    /// input yields exactly the key values; NULL keys never match.
    SemiJoin {
        /// The rows kept or dropped.
        left: Box<Node>,
        /// The keys each left row is matched on.
        left_keys: Vec<Expression>,
        /// The key rows of the subquery.
        right: Box<Node>,
        /// Keep the left rows without a match instead (NOT EXISTS).
        anti: bool,
        /// The predicate it replaces, for EXPLAIN ("EXISTS", "NOT EXISTS", "IN").
        label: String,
    },
    /// A recursive common table: the rows of `initial`, then those of `step` run on the rows
    /// the previous run produced (its [`Node::WorkingTable`]), until a run produces none; with
    /// `distinct` (UNION), rows already produced are dropped. Rows are yielded as produced.
    Recursive {
        /// The table's name, for EXPLAIN.
        name: String,
        /// The initial rows.
        initial: Box<Node>,
        /// The recursive part, reading the working table `id`.
        step: Box<Node>,
        /// Which working table `step` reads.
        id: usize,
        /// UNION rather than UNION ALL.
        distinct: bool,
    },
    /// The rows of the recursive table `id`'s previous run (replaced by them before each run).
    WorkingTable {
        /// The table's name, for EXPLAIN.
        name: String,
        /// The recursive table.
        id: usize,
        /// Its columns' types.
        types: Vec<Option<DataType>>,
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
            | Node::Apply { .. }
            | Node::SemiJoin { .. }
            | Node::Recursive { .. }
            | Node::WorkingTable { .. }
            | Node::Series { .. }
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
            | Node::Window { source, .. }
            | Node::Order { source, .. }
            | Node::Offset { source, .. }
            | Node::Limit { source, .. }
            | Node::Distinct { source } => vec![source],
            Node::Apply { source, subquery, .. } => vec![source, subquery],
            Node::SemiJoin { left, right, .. } => vec![left, right],
            Node::Recursive { initial, step, .. } => vec![initial, step],
            Node::NestedLoopJoin { left, right, .. }
            | Node::HashJoin { left, right, .. }
            | Node::SetOperation { left, right, .. } => vec![left, right],
            Node::Scan { .. }
            | Node::Values { .. }
            | Node::Series { .. }
            | Node::WorkingTable { .. } => vec![],
        }
    }
}

/// What an [`Node::Apply`] computes from its subquery's rows.
#[derive(Clone, Debug, PartialEq)]
pub enum ApplyKind {
    /// The first column of the only row; NULL for none, an error for several.
    Value,
    /// Whether there is a row.
    Exists,
    /// `operand [NOT] IN (the rows' first column)`, with IN's NULL semantics.
    In {
        /// The value looked for, over the input row.
        operand: Expression,
        /// NOT IN.
        negated: bool,
    },
}

/// What an INSERT does with a row that clashes with stored rows on its primary key or a
/// unique index.
#[derive(Clone, Debug, PartialEq)]
pub enum Conflict {
    /// Fail the statement.
    Error,
    /// Delete every row the new one clashes with, then insert it.
    Replace,
    /// Skip the new row if it clashes on `target` (a clash elsewhere stays an error).
    Ignore {
        /// The constraints resolved.
        target: ConflictTarget,
    },
    /// Update the row the new one clashes with on `target`: the expressions read the old
    /// row's columns followed by the new row's (`excluded`); rows for which `filter` does not
    /// hold are skipped.
    Update {
        /// The constraints resolved.
        target: ConflictTarget,
        /// The assignments (column, value).
        set: Vec<(usize, Expression)>,
        /// The condition.
        filter: Option<Expression>,
    },
}

/// The uniqueness constraints a conflict clause resolves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConflictTarget {
    /// The primary key and every unique index.
    Any,
    /// The primary key.
    PrimaryKey,
    /// The unique index of this name.
    Index(String),
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
    /// The rows whose primary keys fall in a range, last key first.
    KeyRangeBackward(Bound<Value>, Bound<Value>),
    /// The rows in an index's order: those whose first indexed columns equal `prefix`, and
    /// (with `range`) whose next one falls in it (never NULL).
    IndexScan {
        /// The index read.
        index: Index,
        /// The values of its first columns.
        prefix: Vec<Value>,
        /// The range of its next column.
        range: Option<Box<(Bound<Value>, Bound<Value>)>>,
        /// Read last entry first.
        reverse: bool,
    },
    /// The rows whose first indexed columns have one of these lists of values (all of one
    /// length, a prefix of the index's columns; sorted).
    Index {
        /// The index used.
        index: Index,
        /// The value lists looked up.
        values: Vec<Vec<Value>>,
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
    /// The second argument: GROUP_CONCAT's separator, evaluated for each value after the
    /// first (`None`: a comma); FIRST's and LAST's time, which picks the value.
    pub second: Option<Expression>,
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
    /// FIRST(v, t): the `v` of the row with the least `t` (rows with a NULL in either are
    /// skipped; on a tie, the least `v`). TimescaleDB's `first`.
    First,
    /// LAST(v, t): the `v` of the row with the greatest `t` (on a tie, the greatest `v`).
    Last,
}

/// A window function of a [`Node::Window`].
#[derive(Clone, Debug, PartialEq)]
pub struct WindowFunction {
    /// What it computes.
    pub kind: WindowKind,
    /// Its arguments, over the input row.
    pub args: Vec<Expression>,
    /// PARTITION BY.
    pub partition_by: Vec<Expression>,
    /// ORDER BY within a partition.
    pub order_by: Vec<SortKey>,
    /// The frame an aggregate, FIRST_VALUE or LAST_VALUE covers (`None`: the partition up to
    /// the current row's last peer with ORDER BY, the whole partition without).
    pub frame: Option<crate::sql::parser::ast::WindowFrame>,
}

impl WindowFunction {
    /// The type of the function's values, given its input's column types.
    pub fn datatype(&self, input: &dyn Fn(usize) -> Option<DataType>) -> Option<DataType> {
        match self.kind {
            WindowKind::RowNumber | WindowKind::Rank | WindowKind::DenseRank => {
                Some(DataType::Integer)
            }
            WindowKind::Aggregate(AggregateFunction::Count) => Some(DataType::Integer),
            WindowKind::Aggregate(AggregateFunction::Avg) => Some(DataType::Float),
            WindowKind::Interpolate => Some(DataType::Float),
            _ => self.args.first().and_then(|a| super::expression::infer_type(a, input)),
        }
    }
}

/// Window functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// ROW_NUMBER(): 1, 2, ... in partition order.
    RowNumber,
    /// RANK(): 1 + the rows before the current one's first peer.
    Rank,
    /// DENSE_RANK(): 1 + the distinct orderings before the current row's.
    DenseRank,
    /// LAG(x [, n [, default]]): x of the row n (1) before.
    Lag,
    /// LEAD(x [, n [, default]]): x of the row n (1) after.
    Lead,
    /// FIRST_VALUE(x): x of the frame's first row.
    FirstValue,
    /// LAST_VALUE(x): x of the frame's last row.
    LastValue,
    /// An aggregate over the frame (COUNT, SUM, AVG, MIN, MAX).
    Aggregate(AggregateFunction),
    /// LOCF(x): x, or when NULL the last non-NULL x before it (gap filling: "previous").
    Locf,
    /// INTERPOLATE(x, t): x, or when NULL the straight line between the non-NULL x before
    /// and after it, at t (a number or timestamp) (gap filling: "linear"); NULL at the ends.
    Interpolate,
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
    /// DATE_TRUNC(unit, ts): the start of the unit holding ts.
    DateTrunc,
    /// DATE_PART(field, ts) and EXTRACT(field FROM ts): a field of a timestamp or interval.
    DatePart,
    /// STRFTIME(format, ts): SQLite's formatting directives.
    Strftime,
    /// TIME_BUCKET(width, ts [, origin]): the start of ts's bucket.
    TimeBucket,
    /// TO_TIMESTAMP(seconds): the timestamp that many seconds after 1970 (UTC).
    ToTimestamp,
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
            ScalarFunction::DateTrunc => "date_trunc",
            ScalarFunction::DatePart => "date_part",
            ScalarFunction::Strftime => "strftime",
            ScalarFunction::TimeBucket => "time_bucket",
            ScalarFunction::ToTimestamp => "to_timestamp",
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
    /// A correlated subquery's reference to the enclosing query's row: the value of the
    /// enclosing [`Node::Apply`]'s parameter at this position (bound before the subquery runs).
    Outer(usize, String),
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

impl fmt::Display for WindowFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            WindowKind::RowNumber => "ROW_NUMBER".to_string(),
            WindowKind::Rank => "RANK".to_string(),
            WindowKind::DenseRank => "DENSE_RANK".to_string(),
            WindowKind::Lag => "LAG".to_string(),
            WindowKind::Lead => "LEAD".to_string(),
            WindowKind::FirstValue => "FIRST_VALUE".to_string(),
            WindowKind::LastValue => "LAST_VALUE".to_string(),
            WindowKind::Locf => "LOCF".to_string(),
            WindowKind::Interpolate => "INTERPOLATE".to_string(),
            WindowKind::Aggregate(function) => format!("{function:?}").to_uppercase(),
        };
        let args: Vec<String> = self.args.iter().map(|a| a.to_string()).collect();
        let args = match (self.kind, args.is_empty()) {
            (WindowKind::Aggregate(AggregateFunction::Count), true) => "*".to_string(),
            _ => args.join(", "),
        };
        write!(f, "{name}({args}) OVER (")?;
        let mut parts = Vec::new();
        if !self.partition_by.is_empty() {
            let exprs: Vec<String> = self.partition_by.iter().map(|e| e.to_string()).collect();
            parts.push(format!("PARTITION BY {}", exprs.join(", ")));
        }
        if !self.order_by.is_empty() {
            let keys: Vec<String> = self
                .order_by
                .iter()
                .map(|k| format!("{}{}", k.expr, if k.descending { " DESC" } else { "" }))
                .collect();
            parts.push(format!("ORDER BY {}", keys.join(", ")));
        }
        if let Some(frame) = &self.frame {
            parts.push(format!("ROWS BETWEEN {} AND {}", frame.start, frame.end));
        }
        write!(f, "{})", parts.join(" "))
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.function {
            AggregateFunction::GroupConcat => "GROUP_CONCAT".to_string(),
            function => format!("{function:?}").to_uppercase(),
        };
        let distinct = if self.distinct { "DISTINCT " } else { "" };
        match (&self.arg, &self.second) {
            (None, _) => write!(f, "{name}(*)"),
            (Some(arg), None) => write!(f, "{name}({distinct}{arg})"),
            (Some(arg), Some(separator)) => write!(f, "{name}({distinct}{arg}, {separator})"),
        }
    }
}
