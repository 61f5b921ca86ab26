//! Queries read like tables: derived tables (`FROM (SELECT ...) AS x`) and the common tables of
//! a WITH clause, which are planned in place wherever they are read. A common table sees the
//! common tables defined before it (and itself, if recursive: `recursive.rs`), and a name
//! defined by WITH hides a stored table of that name within the query. Views are read the same
//! way, from the catalog. Neither reads the columns of the query a subquery reading them
//! stands in (they are not correlated).

use super::expression::{Scope, ScopeColumn};
use super::plan::{Node, OutputColumn};
use super::planner::Planner;
use crate::sql::error::{Error, Result};
use crate::sql::parser::ast;
use std::collections::BTreeSet;

impl Planner<'_> {
    /// Plans a query whose WITH clause defines common tables.
    pub(super) fn plan_with(&self, select: &ast::Select) -> Result<(Node, Vec<OutputColumn>)> {
        let mut seen = BTreeSet::new();
        if let Some(twice) = select.with.iter().find(|t| !seen.insert(t.name.as_str())) {
            return Err(Error::Invalid(format!(
                "common table \"{}\" is defined more than once",
                twice.name
            )));
        }
        let depth = self.common.borrow().len();
        self.common.borrow_mut().extend(select.with.iter().cloned());
        let query = ast::Select { with: Vec::new(), ..select.clone() };
        let planned = self.plan_select(&query);
        self.common.borrow_mut().truncate(depth);
        planned
    }

    /// Plans a read of the common table `name`, if one is in scope.
    pub(super) fn plan_common(
        &self,
        name: &str,
        alias: Option<&str>,
        names: &mut BTreeSet<String>,
    ) -> Option<Result<(Node, Scope)>> {
        let qualifier = alias.unwrap_or(name);
        if let Some(working) = self.plan_working(name, qualifier, names) {
            return Some(working);
        }
        let position = self.common.borrow().iter().rposition(|t| t.name == name)?;
        // Its query sees only the common tables defined before it.
        let hidden = self.common.borrow_mut().split_off(position);
        let table = &hidden[0];
        // Nor the queries a subquery that reads it stands in.
        let outer = std::mem::take(&mut *self.outer.borrow_mut());
        let planned = match table.recursive {
            true => self.plan_recursive(table, qualifier, names),
            false => self.plan_derived(&table.query, Some(qualifier), &table.columns, names),
        };
        *self.outer.borrow_mut() = outer;
        self.common.borrow_mut().extend(hidden);
        Some(planned)
    }

    /// Plans a read of the view `name` (a missing table if there is none).
    pub(super) fn plan_view(
        &self,
        name: &str,
        alias: Option<&str>,
        names: &mut BTreeSet<String>,
    ) -> Result<(Node, Scope)> {
        let view = self.txn().get_view(name)?.ok_or_else(|| Error::UnknownTable(name.into()))?;
        if self.views.borrow().iter().any(|v| v == name) {
            return Err(Error::Invalid(format!("view \"{name}\" reads itself")));
        }
        self.views.borrow_mut().push(name.to_string());
        // A view sees the catalog, not the common tables of the query that reads it.
        let common = std::mem::take(&mut *self.common.borrow_mut());
        let outer = std::mem::take(&mut *self.outer.borrow_mut());
        let planned =
            self.plan_derived(&view.query, Some(alias.unwrap_or(name)), &view.columns, names);
        *self.outer.borrow_mut() = outer;
        *self.common.borrow_mut() = common;
        self.views.borrow_mut().pop();
        planned
    }

    /// Plans a query read like a table named `qualifier` (if any), its columns renamed to
    /// `columns` (if given).
    pub(super) fn plan_derived(
        &self,
        query: &ast::Select,
        qualifier: Option<&str>,
        columns: &[String],
        names: &mut BTreeSet<String>,
    ) -> Result<(Node, Scope)> {
        let (node, output) = self.plan_select(query)?;
        let scope = self.derived_scope(qualifier, columns, &output, names)?;
        Ok((node, scope))
    }

    /// The scope of a query's `output` read like a table named `qualifier` (registered in
    /// `names`), its columns renamed to `columns` (if given).
    pub(super) fn derived_scope(
        &self,
        qualifier: Option<&str>,
        columns: &[String],
        output: &[OutputColumn],
        names: &mut BTreeSet<String>,
    ) -> Result<Scope> {
        if let Some(qualifier) = qualifier
            && !names.insert(qualifier.to_string())
        {
            return Err(Error::Invalid(format!(
                "table name \"{qualifier}\" specified more than once"
            )));
        }
        if !columns.is_empty() && columns.len() != output.len() {
            return Err(Error::Invalid(format!(
                "{} has {} columns but {} names were given",
                qualifier.unwrap_or("the subquery"),
                output.len(),
                columns.len()
            )));
        }
        Ok(Scope {
            columns: output
                .iter()
                .enumerate()
                .map(|(i, column)| ScopeColumn {
                    table: qualifier.map(str::to_string),
                    name: Some(columns.get(i).unwrap_or(&column.name).clone()),
                    datatype: column.datatype,
                    qualified_only: false,
                })
                .collect(),
        })
    }
}
