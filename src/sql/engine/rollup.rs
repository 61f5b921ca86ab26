//! Rollups in the catalog: continuous downsampling of a table (see `planner/rollup.rs` for
//! what a definition may say, `execution/rollup.rs` for how it is kept up to date).
//!
//! A rollup `r` is three things: its definition, kept in the schema of the table whose rows
//! feed it (the *source*, always a stored table: a rollup of a rollup is rewritten in terms of
//! the first one's source); a state table `r$state`, one row per group, keyed by the group
//! values, holding each aggregate's running state; and a view `r` that reads the state as the
//! definition's columns (an average is its sum over its count).

use crate::sql::parser::ast::Expression;
use serde::{Deserialize, Serialize};

/// A rollup's definition, in terms of its source table's columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    /// The view users read.
    pub name: String,
    /// The table holding the running state.
    pub state_table: String,
    /// The view's columns: the groups', then the aggregates'.
    pub columns: Vec<String>,
    /// Source rows that count (WHERE), if not all.
    pub filter: Option<Expression>,
    /// The group values of a source row.
    pub groups: Vec<Expression>,
    /// The aggregates, in order.
    pub aggregates: Vec<RollupAggregate>,
}

/// One aggregate of a rollup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RollupAggregate {
    /// Which aggregate.
    pub function: RollupFunction,
    /// Its argument (`None`: COUNT(*)).
    pub arg: Option<Expression>,
    /// FIRST's and LAST's time argument.
    pub by: Option<Expression>,
}

/// The aggregates a rollup can keep up to date as rows arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RollupFunction {
    /// COUNT(*) or COUNT(x).
    Count,
    /// SUM(x).
    Sum,
    /// MIN(x).
    Min,
    /// MAX(x).
    Max,
    /// AVG(x), kept as a sum and a count.
    Avg,
    /// FIRST(x, t), kept as the value and its time.
    First,
    /// LAST(x, t), kept as the value and its time.
    Last,
}

impl RollupFunction {
    /// How many state columns the aggregate takes.
    pub fn state_width(self) -> usize {
        match self {
            RollupFunction::Avg | RollupFunction::First | RollupFunction::Last => 2,
            _ => 1,
        }
    }

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            RollupFunction::Count => "count",
            RollupFunction::Sum => "sum",
            RollupFunction::Min => "min",
            RollupFunction::Max => "max",
            RollupFunction::Avg => "avg",
            RollupFunction::First => "first",
            RollupFunction::Last => "last",
        }
    }
}
