//! Planning writes and schema: CREATE TABLE's schema, INSERT's source and target columns, and
//! the rows an UPDATE or DELETE changes.

use super::expression::{ConstantContext, Scope, ScopeColumn, ScopeContext, build, infer_type};
use super::plan::{Access, Expression, Node, OutputColumn, Plan, Returning};
use super::planner::{Planner, is_true};
use crate::sql::engine::{Column, Index, Table};
use crate::sql::error::{Error, Result};
use crate::sql::execution::evaluate_constant;
use crate::sql::parser::ast::{self, InsertSource};
use crate::sql::types::{DataType, Value};

impl Planner<'_> {
    pub(super) fn plan_table(
        &self,
        name: &str,
        defs: &[ast::ColumnDef],
        table_key: Option<&[String]>,
        table_unique: &[Vec<String>],
    ) -> Result<Table> {
        let mut primary_key = None;
        let mut columns = Vec::new();
        let mut unique_columns: Vec<Vec<usize>> = Vec::new();
        for (i, def) in defs.iter().enumerate() {
            if def.primary_key && primary_key.replace(i).is_some() {
                return Err(Error::Invalid("multiple primary keys are not allowed".into()));
            }
            // DEFAULT now() (or CURRENT_TIMESTAMP) is each INSERT's time, not the CREATE's.
            let default_now = matches!(&def.default, Some(ast::Expression::Function { name, args, .. })
                if args.is_empty() && matches!(name.as_str(), "now" | "current_timestamp"));
            if default_now && def.datatype != DataType::Timestamp {
                return Err(Error::Invalid(format!(
                    "DEFAULT now() needs a TIMESTAMP column, and \"{}\" is {}",
                    def.name, def.datatype
                )));
            }
            let default = match &def.default {
                Some(_) if default_now => None,
                Some(expr) => Some(evaluate_constant(expr, "DEFAULT")?.coerce_to(def.datatype)?),
                None => None,
            };
            if def.primary_key && def.nullable == Some(true) {
                return Err(Error::Invalid(format!(
                    "primary key column \"{}\" cannot be NULL",
                    def.name
                )));
            }
            columns.push(Column {
                name: def.name.clone(),
                datatype: def.datatype,
                max_length: def.max_length,
                nullable: def.nullable.unwrap_or(!def.primary_key),
                default,
                default_now,
            });
            if def.unique && !def.primary_key {
                unique_columns.push(vec![i]);
            }
        }
        let position = |columns: &[Column], column: &String| {
            columns
                .iter()
                .position(|c| &c.name == column)
                .ok_or_else(|| Error::UnknownColumn(column.clone()))
        };
        // A key of several columns: the rows get a hidden row id, and the key is a unique
        // index on its columns (named `<table>_pkey`), which are NOT NULL.
        let mut composite_key = None;
        if let Some(key) = table_key {
            if primary_key.is_some() {
                return Err(Error::Invalid("multiple primary keys are not allowed".into()));
            }
            let key = key.iter().map(|c| position(&columns, c)).collect::<Result<Vec<_>>>()?;
            match key.as_slice() {
                [column] => primary_key = Some(*column),
                many => {
                    if many.iter().enumerate().any(|(i, c)| many[..i].contains(c)) {
                        return Err(Error::Invalid("a primary key names a column twice".into()));
                    }
                    for column in many {
                        if defs[*column].nullable == Some(true) {
                            return Err(Error::Invalid(format!(
                                "primary key column \"{}\" cannot be NULL",
                                columns[*column].name
                            )));
                        }
                        columns[*column].nullable = false;
                    }
                    composite_key = Some(key);
                }
            }
        }
        if let Some(key) = primary_key {
            columns[key].nullable = false;
        }
        for list in table_unique {
            let index = list.iter().map(|c| position(&columns, c)).collect::<Result<Vec<_>>>()?;
            if index.iter().enumerate().any(|(i, c)| index[..i].contains(c)) {
                return Err(Error::Invalid("a UNIQUE constraint names a column twice".into()));
            }
            let is_key = index.len() == 1 && Some(index[0]) == primary_key;
            if !is_key && composite_key.as_ref() != Some(&index) && !unique_columns.contains(&index)
            {
                unique_columns.push(index);
            }
        }
        // Constraint indexes are named after the table and columns, numbered past names
        // already taken (by this table or another's index).
        let mut indexes: Vec<Index> = Vec::new();
        let constraints = composite_key.map(|key| (format!("{name}_pkey"), key)).into_iter().chain(
            unique_columns.into_iter().map(|unique| {
                let names: Vec<&str> = unique.iter().map(|c| columns[*c].name.as_str()).collect();
                (format!("{name}_{}_key", names.join("_")), unique)
            }),
        );
        for (base, index_columns) in constraints {
            let mut index_name = base.clone();
            let mut number = 1;
            while indexes.iter().any(|i| i.name == index_name)
                || self.txn().index_exists(&index_name)?
            {
                index_name = format!("{base}{number}");
                number += 1;
            }
            indexes.push(Index {
                name: index_name,
                columns: index_columns,
                unique: true,
                constraint: true,
            });
        }
        let table = Table {
            name: name.to_string(),
            columns,
            primary_key,
            indexes,
            statistics: None,
            ttl: None,
            rollups: Vec::new(),
            rollup_of: None,
            forwarded: false,
            live_rows: None,
        };
        table.validate()?;
        Ok(table)
    }

    pub(super) fn plan_insert(
        &self,
        table: &str,
        columns: Option<&[String]>,
        source: &InsertSource,
        conflict: Option<&ast::OnConflict>,
    ) -> Result<Plan> {
        let table = self.txn().must_get_table(table)?;
        let what = if conflict.is_some() { "an upsert" } else { "INSERT" };
        super::rollup::check_write(&table, what, conflict.is_none())?;
        let conflict = self.plan_conflict(&table, conflict)?;
        let (source, width) = match source {
            InsertSource::Values(rows) => {
                let width = rows.first().map_or(0, |row| row.len());
                if rows.iter().any(|row| row.len() != width) {
                    return Err(Error::Invalid("VALUES lists must all be the same length".into()));
                }
                let ctx = ConstantContext("VALUES");
                let rows = rows
                    .iter()
                    .map(|row| row.iter().map(|expr| build(expr, &ctx)).collect::<Result<Vec<_>>>())
                    .collect::<Result<_>>()?;
                (Node::Values { rows }, width)
            }
            InsertSource::Select(select) => {
                let (node, columns) = self.plan_select(select)?;
                (node, columns.len())
            }
            InsertSource::DefaultValues => (Node::Values { rows: vec![vec![]] }, 0),
        };
        let targets: Vec<usize> = match columns {
            Some(names) => {
                let mut targets = Vec::new();
                for name in names {
                    let index = table.column_index(name)?;
                    if targets.contains(&index) {
                        return Err(Error::Invalid(format!(
                            "column \"{name}\" specified more than once"
                        )));
                    }
                    targets.push(index);
                }
                targets
            }
            None => (0..width.min(table.columns.len())).collect(),
        };
        if width != targets.len() {
            return Err(Error::Invalid(format!(
                "INSERT has {width} values per row but {} target columns",
                targets.len()
            )));
        }
        // DEFAULT now() stores the statement's time.
        let mut table = table;
        for column in table.columns.iter_mut().filter(|c| c.default_now) {
            column.default = Some(Value::Timestamp(crate::sql::clock::now()?));
        }
        Ok(Plan::Insert { table, columns: targets, source, conflict, returning: None })
    }

    /// A write's RETURNING list over the rows of `table` (`None` if empty). Names resolve
    /// in the table alone; `*` is its columns.
    pub(super) fn plan_returning(
        &self,
        table: &Table,
        items: &[ast::SelectItem],
    ) -> Result<Option<Returning>> {
        if items.is_empty() {
            return Ok(None);
        }
        let (_, scope) = self.table_scope(&table.name)?;
        let ctx = ScopeContext::new(&scope, "RETURNING");
        let (mut expressions, mut columns) = (Vec::new(), Vec::new());
        for item in items {
            match item {
                ast::SelectItem::Wildcard => {
                    for (i, column) in table.columns.iter().enumerate() {
                        expressions.push(Expression::Column(i, column.name.clone()));
                        columns.push(OutputColumn {
                            name: column.name.clone(),
                            datatype: Some(column.datatype),
                        });
                    }
                }
                ast::SelectItem::TableWildcard(name) => {
                    return Err(Error::Invalid(format!(
                        "RETURNING {name}.* is not supported: use * or name the columns"
                    )));
                }
                ast::SelectItem::Expression(expr, alias) => {
                    let built = build(expr, &ctx)?;
                    let name = match (alias, expr) {
                        (Some(alias), _) => alias.clone(),
                        (None, ast::Expression::Column { name, .. }) => name.clone(),
                        (None, other) => other.to_string(),
                    };
                    let datatype =
                        infer_type(&built, &|i| table.columns.get(i).map(|column| column.datatype));
                    columns.push(OutputColumn { name, datatype });
                    expressions.push(built);
                }
            }
        }
        Ok(Some(Returning { expressions, columns }))
    }

    /// A table and the scope of its columns, qualified by its name.
    pub(super) fn table_scope(&self, name: &str) -> Result<(Table, Scope)> {
        let table = self.txn().must_get_table(name)?;
        let scope = Scope {
            columns: table
                .columns
                .iter()
                .map(|c| ScopeColumn {
                    table: Some(name.to_string()),
                    name: Some(c.name.clone()),
                    datatype: Some(c.datatype),
                    qualified_only: false,
                })
                .collect(),
        };
        Ok((table, scope))
    }

    /// The rows an UPDATE or DELETE changes: a keyed scan with the WHERE filter, and the
    /// position of the key in its rows (`scope` gains a nameless column for the key, and those
    /// of correlated subqueries after it).
    pub(super) fn dml_source(
        &self,
        table: &Table,
        scope: &mut Scope,
        filter: Option<&ast::Expression>,
    ) -> Result<(Node, usize)> {
        let width = scope.len();
        scope.columns.push(ScopeColumn {
            table: None,
            name: None,
            datatype: None,
            qualified_only: true,
        });
        let mut node = Node::Scan {
            table: Box::new(table.clone()),
            alias: None,
            access: Access::Full,
            filter: super::retention::live_rows_filter(table, &table.name)?,
            with_key: true,
        };
        if let Some(filter) = filter {
            let mut filter = filter.clone();
            node = self.attach_subqueries(node, scope, &mut filter, true)?;
            if !is_true(&filter) {
                let predicate = build(&filter, &self.scope_context(scope, "WHERE"))?;
                node = Node::Filter { source: Box::new(node), predicate };
            }
        }
        Ok((node, width))
    }
}

/// An UPDATE's or DELETE's source with its rows' key (at `key`, followed by correlated
/// subqueries' results up to `width`) moved last, where the executor takes it from.
pub(super) fn key_last(source: Node, key: usize, width: usize) -> Node {
    if width == key + 1 {
        return source;
    }
    let expressions = (0..width)
        .filter(|i| *i != key)
        .chain([key])
        .map(|i| Expression::Column(i, format!("#{i}")))
        .collect();
    Node::Projection { source: Box::new(source), expressions }
}
