//! Subqueries in a query's clauses, planned against the scope they stand in.
//!
//! A subquery is planned with the enclosing query's scope on the planner's outer stack, so a
//! name its own FROM does not hold resolves there, as an outer reference
//! ([`Expression::Outer`]) numbered into the parameters the enclosing level records. Then:
//! - no outer reference (uncorrelated): it runs once, now, and its result replaces it
//!   (`subquery.rs`);
//! - a top-level WHERE conjunct `EXISTS`, `NOT EXISTS` or `x IN (...)` whose subquery reads the
//!   enclosing row only through equalities `inner = outer` becomes a [`Node::SemiJoin`] on
//!   those equalities (decorrelated: one pass over the subquery's rows, whatever the number of
//!   outer rows);
//! - otherwise a [`Node::Apply`] runs it per row of the enclosing query (equal parameter values
//!   share a run) and appends its result as a hidden scope column, which the clause then reads.
//!
//! A reference to a query further out passes through every level between: each level's
//! parameter is an outer reference of the level above, bound when that level's row is.

use super::expression::{OuterScopes, SUBQUERY_RESULT, Scope, ScopeColumn, build, infer_type};
use super::optimizer::{column_types, compatible, conjuncts};
use super::plan::{ApplyKind, Expression, Node};
use super::planner::Planner;
use crate::sql::error::{Error, Result};
use crate::sql::parser::ast::{self, BinaryOp, UnaryOp};
use crate::sql::types::{DataType, Value};

/// An enclosing query whose subquery is being planned: its scope, and the values the
/// subquery reads from its rows so far (the future Apply's parameters).
pub(super) struct OuterLevel {
    scope: Scope,
    params: Vec<Expression>,
}

/// A planned subquery: its tree, its output columns' types, and its parameters (empty when it
/// is uncorrelated).
pub(super) struct PlannedSubquery {
    pub node: Node,
    pub types: Vec<Option<DataType>>,
    pub params: Vec<Expression>,
}

impl OuterScopes for Planner<'_> {
    fn resolve_outer(&self, table: Option<&str>, name: &str) -> Result<Option<Expression>> {
        let levels = self.outer.borrow().len();
        self.resolve_at(levels, table, name)
    }
}

impl Planner<'_> {
    /// Resolves `table.name` in the outer levels below `levels` (innermost first), returning
    /// the outer reference a query planned at `levels` reads it through.
    fn resolve_at(
        &self,
        levels: usize,
        table: Option<&str>,
        name: &str,
    ) -> Result<Option<Expression>> {
        let Some(level) = levels.checked_sub(1) else { return Ok(None) };
        let found = {
            let stack = self.outer.borrow();
            let scope = &stack[level].scope;
            match scope.resolve(table, name) {
                Ok(index) => Some(Expression::Column(index, scope.label(index))),
                Err(Error::UnknownColumn(_)) => None,
                Err(error) => return Err(error),
            }
        };
        let in_level = match found {
            Some(column) => column,
            None => match self.resolve_at(level, table, name)? {
                Some(outer) => outer,
                None => return Ok(None),
            },
        };
        let label = match &in_level {
            Expression::Column(_, label) | Expression::Outer(_, label) => label.clone(),
            other => other.to_string(),
        };
        let mut stack = self.outer.borrow_mut();
        let params = &mut stack[level].params;
        let position = match params.iter().position(|p| *p == in_level) {
            Some(position) => position,
            None => {
                params.push(in_level);
                params.len() - 1
            }
        };
        Ok(Some(Expression::Outer(position, label)))
    }

    /// Plans a subquery that stands in a clause over `scope`.
    pub(super) fn plan_subquery(
        &self,
        query: &ast::Select,
        scope: &Scope,
    ) -> Result<PlannedSubquery> {
        self.outer.borrow_mut().push(OuterLevel { scope: scope.clone(), params: Vec::new() });
        let planned = self.plan_select(query);
        let level = self.outer.borrow_mut().pop();
        let (node, columns) = planned?;
        let params = level.map(|level| level.params).unwrap_or_default();
        Ok(PlannedSubquery { node, types: columns.iter().map(|c| c.datatype).collect(), params })
    }

    /// Plans the subqueries of a clause's expression over `node` (whose rows `scope`
    /// describes): uncorrelated ones are replaced by their results, correlated ones by a
    /// hidden column of an Apply added over `node` (and to `scope`). With `where_clause`, the
    /// top-level conjuncts EXISTS, NOT EXISTS and IN may become semi-joins instead.
    pub(super) fn attach_subqueries(
        &self,
        node: Node,
        scope: &mut Scope,
        expr: &mut ast::Expression,
        where_clause: bool,
    ) -> Result<Node> {
        if !super::expression::has_subquery(expr) {
            return Ok(node);
        }
        if !where_clause {
            return self.replace_subqueries(node, scope, expr);
        }
        let mut parts = Vec::new();
        split_and(std::mem::replace(expr, ast::Expression::Literal(Value::Null)), &mut parts);
        let mut node = node;
        for part in &mut parts {
            node = match part {
                ast::Expression::Exists(_) => self.attach_one(node, scope, part, Some(false))?,
                ast::Expression::Unary(UnaryOp::Not, inner)
                    if matches!(inner.as_ref(), ast::Expression::Exists(_)) =>
                {
                    self.attach_one(node, scope, inner, Some(true))?
                }
                ast::Expression::InSubquery { expr: operand, negated: false, .. }
                    if !super::expression::has_subquery(operand) =>
                {
                    self.attach_one(node, scope, part, Some(false))?
                }
                part => self.replace_subqueries(node, scope, part)?,
            };
        }
        // Conjuncts a semi-join answers are TRUE here: left out.
        let decorrelated = ast::Expression::Literal(Value::Boolean(true));
        *expr = parts
            .into_iter()
            .filter(|part| *part != decorrelated)
            .reduce(|a, b| ast::Expression::Binary(BinaryOp::And, Box::new(a), Box::new(b)))
            .unwrap_or(ast::Expression::Literal(Value::Boolean(true)));
        Ok(node)
    }

    /// Plans the subqueries inside the aggregate calls of `expr` over `node` (the rows being
    /// aggregated), as [`Planner::attach_subqueries`] does.
    pub(super) fn attach_in_aggregates(
        &self,
        node: Node,
        scope: &mut Scope,
        expr: &mut ast::Expression,
    ) -> Result<Node> {
        crate::sql::with_stack(|| {
            if !super::expression::has_subquery(expr) {
                return Ok(node);
            }
            let aggregate = super::expression::is_aggregate(expr);
            let mut node = node;
            for child in expr.children_mut() {
                node = match aggregate {
                    true => self.attach_subqueries(node, scope, child, false)?,
                    false => self.attach_in_aggregates(node, scope, child)?,
                };
            }
            Ok(node)
        })
    }

    /// Builds a JOIN's ON condition over `scope`; a subquery in it may not read the joined
    /// rows (there is no Apply inside a join).
    pub(super) fn join_condition(&self, on: &ast::Expression, scope: &Scope) -> Result<Expression> {
        if !super::expression::has_subquery(on) {
            return build(on, &self.scope_context(scope, "JOIN conditions"));
        }
        let mut on = on.clone();
        let placeholder = Node::Values { rows: Vec::new() };
        let node =
            self.attach_subqueries(placeholder.clone(), &mut scope.clone(), &mut on, false)?;
        if node != placeholder {
            return Err(Error::Invalid(
                "a subquery in a JOIN condition cannot read the joined tables' columns (move the condition to WHERE)".into(),
            ));
        }
        build(&on, &self.scope_context(scope, "JOIN conditions"))
    }

    /// Replaces every subquery in `expr` (see [`Planner::attach_subqueries`]).
    fn replace_subqueries(
        &self,
        node: Node,
        scope: &mut Scope,
        expr: &mut ast::Expression,
    ) -> Result<Node> {
        crate::sql::with_stack(|| match expr {
            ast::Expression::Subquery(_)
            | ast::Expression::Exists(_)
            | ast::Expression::InSubquery { .. } => self.attach_one(node, scope, expr, None),
            other => {
                let mut node = node;
                for child in other.children_mut() {
                    node = self.replace_subqueries(node, scope, child)?;
                }
                Ok(node)
            }
        })
    }

    /// Plans the one subquery `expr` is (a value, EXISTS or IN); `semi` (with whether it is
    /// negated) allows a semi-join when it is a top-level WHERE conjunct.
    fn attach_one(
        &self,
        node: Node,
        scope: &mut Scope,
        expr: &mut ast::Expression,
        semi: Option<bool>,
    ) -> Result<Node> {
        let mut node = node;
        let (query, kind) = match expr {
            ast::Expression::Subquery(query) => (query.clone(), None),
            ast::Expression::Exists(query) => (query.clone(), None),
            ast::Expression::InSubquery { expr: operand, query, negated } => {
                node = self.replace_subqueries(node, scope, operand)?;
                let operand = build(operand, &self.scope_context(scope, "IN"))?;
                (query.clone(), Some(ApplyKind::In { operand, negated: *negated }))
            }
            _ => return Err(Error::Invalid("internal error: not a subquery".into())),
        };
        let planned = self.plan_subquery(&query, scope)?;
        let kind = match (kind, &expr) {
            (Some(kind), _) => kind,
            (None, ast::Expression::Exists(_)) => ApplyKind::Exists,
            (None, _) => ApplyKind::Value,
        };
        if !matches!(kind, ApplyKind::Exists) && planned.types.len() != 1 {
            return Err(Error::Invalid(format!(
                "a subquery used in an expression must return one column, not {}",
                planned.types.len()
            )));
        }
        if planned.params.is_empty() {
            self.run_uncorrelated(expr, planned.node, &kind)?;
            return Ok(node);
        }
        if let Some(anti) = semi
            && let Some((right, left_keys)) = semi_join_keys(&planned, &kind, scope)
        {
            let label = match (&kind, anti) {
                (ApplyKind::In { .. }, _) => "IN",
                (_, false) => "EXISTS",
                (_, true) => "NOT EXISTS",
            };
            *expr = ast::Expression::Literal(Value::Boolean(!anti));
            return Ok(Node::SemiJoin {
                left: Box::new(node),
                left_keys,
                right: Box::new(right),
                anti,
                label: label.to_string(),
            });
        }
        // Numbered across the statement: scopes before and after an aggregation must not
        // share a name.
        let number = self.applied.get() + 1;
        self.applied.set(number);
        let label = format!("subquery {number}");
        let datatype = match kind {
            ApplyKind::Value => planned.types[0],
            _ => Some(DataType::Boolean),
        };
        scope.columns.push(ScopeColumn {
            table: Some(SUBQUERY_RESULT.to_string()),
            name: Some(label.clone()),
            datatype,
            qualified_only: true,
        });
        *expr = ast::Expression::Column {
            table: Some(SUBQUERY_RESULT.to_string()),
            name: label.clone(),
        };
        Ok(Node::Apply {
            source: Box::new(node),
            subquery: Box::new(planned.node),
            params: planned.params,
            kind,
            label,
        })
    }
}

/// `node` (the FROM rows, `width` columns wide, under the WHERE clause's semi-joins and
/// Applies) filtered by `predicate`: the conjuncts that read no subquery's result go right
/// over the FROM rows, where join ordering sees them and fewer rows then run subqueries.
pub(super) fn filter_below_subqueries(node: Node, predicate: Expression, width: usize) -> Node {
    let mut parts = Vec::new();
    conjuncts(predicate, &mut parts);
    let (below, above): (Vec<_>, Vec<_>) =
        parts.into_iter().partition(|part| part.columns().iter().all(|c| *c < width));
    let node = match super::optimizer::and_all(below) {
        Some(predicate) => insert_filter(node, predicate),
        None => node,
    };
    match super::optimizer::and_all(above) {
        Some(predicate) => Node::Filter { source: Box::new(node), predicate },
        None => node,
    }
}

/// Puts a filter under the chain of semi-joins and Applies at the top of `node`.
fn insert_filter(node: Node, predicate: Expression) -> Node {
    match node {
        Node::Apply { source, subquery, params, kind, label } => Node::Apply {
            source: Box::new(insert_filter(*source, predicate)),
            subquery,
            params,
            kind,
            label,
        },
        Node::SemiJoin { left, left_keys, right, anti, label } => Node::SemiJoin {
            left: Box::new(insert_filter(*left, predicate)),
            left_keys,
            right,
            anti,
            label,
        },
        other => Node::Filter { source: Box::new(other), predicate },
    }
}

/// Splits an AST expression into its AND-ed conjuncts.
fn split_and(expr: ast::Expression, out: &mut Vec<ast::Expression>) {
    crate::sql::with_stack(|| match expr {
        ast::Expression::Binary(BinaryOp::And, a, b) => {
            split_and(*a, out);
            split_and(*b, out);
        }
        other => out.push(other),
    })
}

/// The right input and left keys of a semi-join equivalent to the subquery, if it is a plain
/// SELECT (no aggregation or LIMIT) that reads the enclosing row only in WHERE equalities
/// `inner = outer` of compatible types; for IN, its one column must equal the operand too.
fn semi_join_keys(
    planned: &PlannedSubquery,
    kind: &ApplyKind,
    scope: &Scope,
) -> Option<(Node, Vec<Expression>)> {
    let mut node = &planned.node;
    while let Node::Order { source, .. } | Node::Distinct { source } = node {
        node = source;
    }
    let Node::Projection { source, expressions } = node else { return None };
    let (from, predicate) = match source.as_ref() {
        Node::Filter { source, predicate } => (source.as_ref(), Some(predicate.clone())),
        other => (other, None),
    };
    if matches!(from, Node::Aggregate { .. }) || from.reads_outer() {
        return None;
    }
    let inner_types = column_types(from);
    let inner_type = |e: &Expression| infer_type(e, &|i| inner_types.get(i).copied().flatten());
    let outer_type =
        |e: &Expression| infer_type(e, &|i| scope.columns.get(i).and_then(|c| c.datatype));
    let (mut local, mut right_keys, mut left_keys) = (Vec::new(), Vec::new(), Vec::new());
    let mut parts = Vec::new();
    if let Some(predicate) = predicate {
        conjuncts(predicate, &mut parts);
    }
    for part in parts {
        if !part.reads_outer() {
            local.push(part);
            continue;
        }
        let Expression::Binary(BinaryOp::Equal, a, b) = part else { return None };
        let (inner, k) = match (*a, *b) {
            (Expression::Outer(k, _), inner) | (inner, Expression::Outer(k, _)) => (inner, k),
            _ => return None,
        };
        let param = planned.params.get(k)?.clone();
        if inner.reads_outer() || !compatible(inner_type(&inner), outer_type(&param)) {
            return None;
        }
        right_keys.push(inner);
        left_keys.push(param);
    }
    if left_keys.is_empty() {
        return None;
    }
    if let ApplyKind::In { operand, .. } = kind {
        let [item] = expressions.as_slice() else { return None };
        if item.reads_outer() || !compatible(inner_type(item), outer_type(operand)) {
            return None;
        }
        right_keys.push(item.clone());
        left_keys.push(operand.clone());
    }
    let filtered = match super::optimizer::and_all(local) {
        Some(predicate) => Node::Filter { source: Box::new(from.clone()), predicate },
        None => from.clone(),
    };
    Some((Node::Projection { source: Box::new(filtered), expressions: right_keys }, left_keys))
}
