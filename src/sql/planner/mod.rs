//! The planner: AST statements in, executable [`Plan`]s out.
//!
//! Planning resolves table and column names against the catalog (as the transaction sees it),
//! turns expressions into [`Expression`]s over column positions, plans subqueries (run once,
//! decorrelated into semi-joins, or applied per row), aggregation, ordering and limits, and
//! then optimizes (filter pushdown, key and index lookups, hash joins).

mod aggregation;
mod binding;
mod compound;
mod correlated;
mod derived;
mod explain;
mod expression;
mod expression_tree;
mod join_order;
mod optimizer;
mod order;
mod plan;
#[allow(clippy::module_inception)]
mod planner;
mod recursive;
pub mod retention;
pub mod rollup;
mod series;
mod subquery;
mod upsert;
mod window;
mod writes;

pub use expression::{
    ConstantContext, Context, OuterScopes, Scope, ScopeColumn, ScopeContext, build,
};
pub use optimizer::optimize_query;
pub use plan::{
    Access, Aggregate, AggregateFunction, ApplyKind, Conflict, ConflictTarget, Expression, Node,
    OutputColumn, Plan, Returning, ScalarFunction, SortKey, WindowFunction, WindowKind,
};
pub use planner::Planner;
