//! Uncorrelated subqueries: `(SELECT ...)` for a value, `EXISTS (SELECT ...)`, and
//! `expr [NOT] IN (SELECT ...)` that do not read the enclosing query's columns run once, while
//! their statement is planned (in the statement's transaction, so they see what the statement
//! sees), and are replaced by their results: a value (NULL for no row; more than one row is an
//! error), TRUE or FALSE, or the list of values IN then tests with its usual NULL semantics.
//! EXPLAIN shows the results in place. The rows a subquery yields count against the
//! statement's memory budget. Correlated subqueries are planned in `correlated.rs`.

use super::expression::{Scope, has_subquery};
use super::optimizer;
use super::plan::{ApplyKind, Node, Plan};
use super::planner::Planner;
use crate::sql::error::{Error, Result};
use crate::sql::execution::execute_node;
use crate::sql::parser::ast::{Expression, InsertSource, Statement};
use crate::sql::types::{Row, Value};

impl Planner<'_> {
    /// The statement with the subqueries of an INSERT's VALUES replaced by their results;
    /// `None` if it has none (the other statements plan theirs clause by clause).
    pub(super) fn resolve_statement(&self, statement: &Statement) -> Result<Option<Statement>> {
        let mut statement = match statement {
            Statement::Insert { source: InsertSource::Values(rows), .. }
                if rows.iter().flatten().any(has_subquery) =>
            {
                statement.clone()
            }
            _ => return Ok(None),
        };
        if let Statement::Insert { source: InsertSource::Values(rows), .. } = &mut statement {
            for value in rows.iter_mut().flatten() {
                // No column is in scope, so nothing can be correlated.
                let values = Node::Values { rows: vec![vec![]] };
                self.attach_subqueries(values, &mut Scope::default(), value, false)?;
            }
        }
        Ok(Some(statement))
    }

    /// Runs an uncorrelated subquery planned as `node` and replaces `expr` (the subquery) by
    /// its result.
    pub(super) fn run_uncorrelated(
        &self,
        expr: &mut Expression,
        node: Node,
        kind: &ApplyKind,
    ) -> Result<()> {
        match kind {
            ApplyKind::Value => {
                let mut rows = self.run(node, Some(2))?;
                if rows.len() > 1 {
                    return Err(Error::Invalid(
                        "a subquery used as a value returned more than one row".into(),
                    ));
                }
                let value = rows.pop().and_then(|row| row.into_iter().next());
                *expr = Expression::Literal(value.unwrap_or(Value::Null));
            }
            ApplyKind::Exists => {
                let found = !self.run(node, Some(1))?.is_empty();
                *expr = Expression::Literal(Value::Boolean(found));
            }
            ApplyKind::In { negated, .. } => {
                let list = self
                    .run(node, None)?
                    .into_iter()
                    .filter_map(|row| row.into_iter().next())
                    .map(Expression::Literal)
                    .collect();
                let Expression::InSubquery { expr: operand, .. } = expr else {
                    return Err(Error::Invalid("internal error: IN without its operand".into()));
                };
                let operand = std::mem::replace(operand.as_mut(), Expression::CountStar);
                *expr = Expression::InList { expr: Box::new(operand), list, negated: *negated };
            }
        }
        Ok(())
    }

    /// Runs a planned subquery: its rows (at most `limit`).
    fn run(&self, node: Node, limit: Option<u64>) -> Result<Vec<Row>> {
        if self.defer_subqueries {
            return Err(Error::Deferred);
        }
        let root = match limit {
            Some(limit) => Node::Limit { source: Box::new(node), limit },
            None => node,
        };
        let Plan::Select { root, .. } =
            optimizer::optimize(Plan::Select { root, columns: Vec::new() })
        else {
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
