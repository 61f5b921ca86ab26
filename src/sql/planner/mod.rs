//! The planner: AST statements in, executable [`Plan`]s out.
//!
//! Planning resolves table and column names against the catalog (as the transaction sees it),
//! turns expressions into [`Expression`]s over column positions, plans aggregation, ordering
//! and limits, and then optimizes (filter pushdown, key and index lookups, hash joins).

mod compound;
mod derived;
mod expression;
mod join_order;
mod optimizer;
mod plan;
#[allow(clippy::module_inception)]
mod planner;
mod subquery;
mod upsert;

pub use expression::{ConstantContext, Context, Scope, ScopeColumn, ScopeContext, build};
pub use plan::{
    Access, Aggregate, AggregateFunction, Conflict, Expression, Node, OutputColumn, Plan,
    ScalarFunction, SortKey,
};
pub use planner::Planner;
