//! Compound queries: SELECTs joined by UNION [ALL], INTERSECT and EXCEPT. The operators apply
//! left to right with equal precedence, as in SQLite (the standard binds INTERSECT tighter:
//! use parentheses there). Every SELECT must have as many columns as the first, whose names
//! and types the result takes. ORDER BY, LIMIT and OFFSET apply to the whole; ORDER BY names
//! an output column or its position.

use super::plan::{Node, OutputColumn, SortKey};
use super::planner::{Planner, offset_and_limit};
use crate::sql::error::{Error, Result};
use crate::sql::parser::ast;
use crate::sql::types::Value;

/// The most SELECTs one compound query may join (as SQLite's default limit).
const MAX_COMPOUND_SELECTS: usize = 500;

impl Planner<'_> {
    /// Plans a compound query (see the module docs).
    pub(super) fn plan_compound(&self, query: &ast::Select) -> Result<(Node, Vec<OutputColumn>)> {
        let first = ast::Select {
            order_by: Vec::new(),
            limit: None,
            offset: None,
            compound: Vec::new(),
            ..query.clone()
        };
        if query.compound.len() >= MAX_COMPOUND_SELECTS {
            return Err(Error::Invalid(format!(
                "a compound query may join at most {MAX_COMPOUND_SELECTS} SELECTs"
            )));
        }
        let (mut node, columns) = self.plan_select(&first)?;
        for part in &query.compound {
            let (right, right_columns) = self.plan_select(&part.select)?;
            if right_columns.len() != columns.len() {
                return Err(Error::Invalid(format!(
                    "each SELECT of a compound query must have the same number of columns: {} and {}",
                    columns.len(),
                    right_columns.len()
                )));
            }
            node = Node::SetOperation { op: part.op, left: Box::new(node), right: Box::new(right) };
        }
        let mut keys = Vec::new();
        for item in &query.order_by {
            let position = match &item.expr {
                ast::Expression::Literal(Value::Integer(n)) => usize::try_from(*n)
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .filter(|p| *p < columns.len()),
                ast::Expression::Column { table: None, name } => {
                    columns.iter().position(|c| c.name == *name)
                }
                _ => None,
            };
            let Some(position) = position else {
                return Err(Error::Invalid(
                    "ORDER BY of a compound query takes the name or position of an output column"
                        .into(),
                ));
            };
            keys.push(SortKey {
                expr: super::plan::Expression::Column(position, columns[position].name.clone()),
                descending: item.descending,
                nulls_first: item.nulls_first.unwrap_or(!item.descending),
            });
        }
        if !keys.is_empty() {
            node = Node::Order { source: Box::new(node), keys };
        }
        Ok((offset_and_limit(node, query)?, columns))
    }
}
