//! Recursive common tables (`WITH RECURSIVE`): a common table whose query is
//! `initial UNION [ALL] step`, where `step` reads the table itself once in its FROM. The
//! initial query's rows come first; then `step` runs on the rows the last run produced (the
//! working table), and its rows are added, until a run produces none. UNION drops rows already
//! produced (so a cycle ends); UNION ALL keeps them (a LIMIT on the table, or the statement's
//! memory budget, ends an endless one). The initial part may itself be compound; ORDER BY is
//! not supported. Rows are yielded as produced, so a LIMIT stops the recursion.
//!
//! A common table declared RECURSIVE whose query does not read itself is an ordinary one.

use super::expression::Scope;
use super::plan::{Node, OutputColumn};
use super::planner::{Planner, offset_and_limit};
use crate::sql::error::{Error, Result};
use crate::sql::parser::ast::{self, SetOperator};
use crate::sql::types::DataType;
use std::collections::BTreeSet;

/// A recursive table whose step is being planned: reads of `name` there read its working
/// table.
pub(super) struct Working {
    name: String,
    id: usize,
    columns: Vec<OutputColumn>,
    reads: usize,
}

impl Planner<'_> {
    /// Plans a read of the common table `table`, declared RECURSIVE.
    pub(super) fn plan_recursive(
        &self,
        table: &ast::CommonTable,
        qualifier: &str,
        names: &mut BTreeSet<String>,
    ) -> Result<(Node, Scope)> {
        let query = &table.query;
        let Some((last, initial_parts)) = query.compound.split_last() else {
            return self.plan_derived(query, Some(qualifier), &table.columns, names);
        };
        if !matches!(last.op, SetOperator::Union | SetOperator::UnionAll) {
            return self.plan_derived(query, Some(qualifier), &table.columns, names);
        }
        let initial = ast::Select {
            compound: initial_parts.to_vec(),
            order_by: Vec::new(),
            limit: None,
            offset: None,
            ..query.clone()
        };
        let (initial, mut columns) = self.plan_select(&initial)?;
        if !table.columns.is_empty() {
            if table.columns.len() != columns.len() {
                return Err(Error::Invalid(format!(
                    "{} has {} columns but {} names were given",
                    table.name,
                    columns.len(),
                    table.columns.len()
                )));
            }
            for (column, name) in columns.iter_mut().zip(&table.columns) {
                column.name = name.clone();
            }
        }
        let id = self.recursions.get();
        self.recursions.set(id + 1);
        self.working.borrow_mut().push(Working {
            name: table.name.clone(),
            id,
            columns: columns.clone(),
            reads: 0,
        });
        let step = self.plan_select(&last.select);
        let reads = self.working.borrow_mut().pop().map_or(0, |w| w.reads);
        let (step, step_columns) = step?;
        if reads == 0 {
            return self.plan_derived(query, Some(qualifier), &table.columns, names);
        }
        if reads > 1 {
            return Err(Error::Invalid(format!(
                "the recursive part of \"{}\" may read it only once",
                table.name
            )));
        }
        if !query.order_by.is_empty() {
            return Err(Error::Invalid(format!(
                "ORDER BY in the recursive common table \"{}\" is not supported",
                table.name
            )));
        }
        if step_columns.len() != columns.len() {
            return Err(Error::Invalid(format!(
                "each SELECT of a compound query must have the same number of columns: {} and {}",
                columns.len(),
                step_columns.len()
            )));
        }
        let node = Node::Recursive {
            name: table.name.clone(),
            initial: Box::new(initial),
            step: Box::new(step),
            id,
            distinct: last.op == SetOperator::Union,
        };
        let node = offset_and_limit(node, query)?;
        let names_given: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let scope = self.derived_scope(Some(qualifier), &names_given, &columns, names)?;
        Ok((node, scope))
    }

    /// A read of the working table `name` in the step of a recursive table, if that is what
    /// the name means here.
    pub(super) fn plan_working(
        &self,
        name: &str,
        qualifier: &str,
        names: &mut BTreeSet<String>,
    ) -> Option<Result<(Node, Scope)>> {
        let (id, columns) = {
            let mut working = self.working.borrow_mut();
            let table = working.iter_mut().rev().find(|w| w.name == name)?;
            table.reads += 1;
            (table.id, table.columns.clone())
        };
        let types: Vec<Option<DataType>> = columns.iter().map(|c| c.datatype).collect();
        let node = Node::WorkingTable { name: name.to_string(), id, types };
        let names_given: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        Some(self.derived_scope(Some(qualifier), &names_given, &columns, names).map(|s| (node, s)))
    }
}
