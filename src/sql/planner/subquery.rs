//! Subqueries in expressions: `(SELECT ...)` for a value, `EXISTS (SELECT ...)`, and
//! `expr [NOT] IN (SELECT ...)`. A subquery that does not read the enclosing query's columns
//! runs once, while its statement is planned (in the statement's transaction, so it sees
//! what the statement sees), and is replaced by its result: a value (NULL for no row; more
//! than one row is an error), TRUE or FALSE, or the list of values IN then tests with its
//! usual NULL semantics. EXPLAIN shows the results in place. A subquery that reads the
//! enclosing query's columns (correlated) is not supported yet: its columns do not resolve.
//! The rows a subquery yields count against the statement's memory budget.

use super::expression::has_subquery;
use super::optimizer;
use super::plan::{Node, Plan};
use super::planner::Planner;
use crate::sql::error::{Error, Result};
use crate::sql::execution::execute_node;
use crate::sql::parser::ast::{self, Expression, FromItem, InsertSource, SelectItem, Statement};
use crate::sql::types::{Row, Value};

impl Planner<'_> {
    /// The statement with the subqueries of an INSERT's VALUES or an UPDATE's or DELETE's
    /// expressions replaced by their results; `None` if it has none (queries resolve their
    /// own, level by level, in `plan_select`).
    pub(super) fn resolve_statement(&self, statement: &Statement) -> Result<Option<Statement>> {
        let mut statement = match statement {
            Statement::Insert { source: InsertSource::Values(rows), .. }
                if rows.iter().flatten().any(has_subquery) =>
            {
                statement.clone()
            }
            Statement::Update { set, filter, .. }
                if set.iter().any(|(_, e)| has_subquery(e))
                    || filter.as_ref().is_some_and(has_subquery) =>
            {
                statement.clone()
            }
            Statement::Delete { filter: Some(filter), .. } if has_subquery(filter) => {
                statement.clone()
            }
            _ => return Ok(None),
        };
        match &mut statement {
            Statement::Insert { source: InsertSource::Values(rows), .. } => {
                for value in rows.iter_mut().flatten() {
                    self.resolve(value)?;
                }
            }
            Statement::Update { set, filter, .. } => {
                for (_, expr) in set.iter_mut() {
                    self.resolve(expr)?;
                }
                if let Some(filter) = filter {
                    self.resolve(filter)?;
                }
            }
            Statement::Delete { filter: Some(filter), .. } => self.resolve(filter)?,
            _ => {}
        }
        Ok(Some(statement))
    }

    /// The query with the subqueries of its own clauses replaced by their results; `None` if
    /// it has none.
    pub(super) fn resolve_select(&self, select: &ast::Select) -> Result<Option<ast::Select>> {
        if !any_subquery(select) {
            return Ok(None);
        }
        let mut select = select.clone();
        visit(&mut select, &mut |e| self.resolve(e))?;
        Ok(Some(select))
    }

    /// Replaces the subqueries in `expr` by their results.
    fn resolve(&self, expr: &mut Expression) -> Result<()> {
        crate::sql::with_stack(|| {
            match expr {
                Expression::Subquery(query) => {
                    let mut rows = self.run(query, Some(2))?;
                    if rows.len() > 1 {
                        return Err(Error::Invalid(
                            "a subquery used as a value returned more than one row".into(),
                        ));
                    }
                    let value = rows.pop().and_then(|row| row.into_iter().next());
                    *expr = Expression::Literal(value.unwrap_or(Value::Null));
                }
                Expression::Exists(query) => {
                    let found = !self.run(query, Some(1))?.is_empty();
                    *expr = Expression::Literal(Value::Boolean(found));
                }
                Expression::InSubquery { expr: operand, query, negated } => {
                    self.resolve(operand)?;
                    let list = self
                        .run(query, None)?
                        .into_iter()
                        .filter_map(|row| row.into_iter().next())
                        .map(Expression::Literal)
                        .collect();
                    let operand = std::mem::replace(operand.as_mut(), Expression::CountStar);
                    *expr = Expression::InList { expr: Box::new(operand), list, negated: *negated };
                }
                other => {
                    for child in other.children_mut() {
                        self.resolve(child)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Runs a one-column subquery: its rows (at most `limit`).
    fn run(&self, query: &ast::Select, limit: Option<u64>) -> Result<Vec<Row>> {
        if self.defer_subqueries {
            return Err(Error::Deferred);
        }
        let (node, columns) = self.plan_select(query)?;
        if columns.len() != 1 {
            return Err(Error::Invalid(format!(
                "a subquery used in an expression must return one column, not {}",
                columns.len()
            )));
        }
        let root = match limit {
            Some(limit) => Node::Limit { source: Box::new(node), limit },
            None => node,
        };
        let Plan::Select { root, .. } = optimizer::optimize(Plan::Select { root, columns }) else {
            return Err(Error::Invalid("internal error: a subquery planned as a write".into()));
        };
        let txn = self.txn();
        let mut rows = Vec::new();
        for row in execute_node(root, txn)? {
            let row = row?;
            txn.budget().hold(&row)?;
            rows.push(row);
        }
        Ok(rows)
    }
}

/// Whether the query's own clauses hold a subquery (a cheap check: most queries have none).
fn any_subquery(select: &ast::Select) -> bool {
    fn in_from(item: &FromItem) -> bool {
        match item {
            FromItem::Join { left, right, on, .. } => {
                in_from(left) || in_from(right) || on.as_ref().is_some_and(has_subquery)
            }
            _ => false,
        }
    }
    select.select.iter().any(|item| match item {
        SelectItem::Expression(expr, _) => has_subquery(expr),
        _ => false,
    }) || select.from.iter().any(in_from)
        || select.filter.iter().chain(&select.group_by).chain(&select.having).any(has_subquery)
        || select.order_by.iter().any(|item| has_subquery(&item.expr))
}

/// Calls `f` on each expression of the query's own clauses (not those of queries in FROM).
fn visit(select: &mut ast::Select, f: &mut dyn FnMut(&mut Expression) -> Result<()>) -> Result<()> {
    for item in &mut select.select {
        if let SelectItem::Expression(expr, _) = item {
            f(expr)?;
        }
    }
    for item in &mut select.from {
        visit_from(item, f)?;
    }
    for expr in select.filter.iter_mut().chain(&mut select.group_by).chain(&mut select.having) {
        f(expr)?;
    }
    for item in &mut select.order_by {
        f(&mut item.expr)?;
    }
    Ok(())
}

fn visit_from(item: &mut FromItem, f: &mut dyn FnMut(&mut Expression) -> Result<()>) -> Result<()> {
    if let FromItem::Join { left, right, on, .. } = item {
        visit_from(left, f)?;
        visit_from(right, f)?;
        if let Some(on) = on {
            f(on)?;
        }
    }
    Ok(())
}
