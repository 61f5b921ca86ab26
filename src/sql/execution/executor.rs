//! Runs plans: query nodes as row iterators, and writes against the transaction.

use super::{Rows, StatementResult, aggregate, join};
use crate::sql::engine::{Table, Txn};
use crate::sql::error::{Error, Result};
use crate::sql::planner::{Access, Conflict, Expression, Node, Plan, Returning};
use crate::sql::types::{Row, Value};
use std::ops::Bound;

/// Executes a planned statement in a transaction; a write that succeeds adds the rows it
/// inserted and deleted to the tables' row counts (a failed one is undone, counts too).
pub fn execute(plan: Plan, txn: &mut Txn) -> Result<StatementResult> {
    let result = execute_plan(plan, txn);
    match result {
        Ok(_) => txn.flush_row_counts()?,
        Err(_) => txn.forget_row_counts(),
    }
    result
}

fn execute_plan(plan: Plan, txn: &mut Txn) -> Result<StatementResult> {
    Ok(match plan {
        Plan::Select { root, columns } => {
            let rows = execute_node(root, txn)?.collect::<Result<Vec<_>>>()?;
            StatementResult::Query { columns, rows }
        }
        Plan::Insert { table, columns, source, conflict, returning } => {
            let rows = collect_held(execute_node(source, txn)?, txn)?;
            let defaults: Row =
                table.columns.iter().map(|c| c.default.clone().unwrap_or(Value::Null)).collect();
            let count = rows.len() as u64;
            let mut prepared = Vec::with_capacity(rows.len());
            let mut invalid = None;
            for values in rows {
                let mut row = defaults.clone();
                for (target, value) in columns.iter().zip(values) {
                    row[*target] = value;
                }
                match table.prepare_row(row) {
                    Ok(row) => prepared.push(row),
                    Err(error) => {
                        invalid = Some(error);
                        break;
                    }
                }
            }
            // Expired rows the new ones clash with go first, as if already deleted.
            super::retention::clear_expired_clashes(txn, &table, &prepared)?;
            // The rows before an invalid one go first: the first failing row, in order, is the
            // one reported.
            let mut written = returning.as_ref().map(|_| Vec::new());
            let count = match conflict {
                Conflict::Error => {
                    if let Some(written) = &mut written {
                        written.extend(prepared.iter().cloned());
                    }
                    super::rollup::maintain(txn, &table, &prepared)?;
                    txn.insert_rows(&table, prepared)?;
                    count
                }
                conflict => {
                    super::upsert::insert(txn, &table, prepared, &conflict, written.as_mut())?
                }
            };
            if let Some(error) = invalid {
                return Err(error);
            }
            match returning {
                Some(returning) => returned(&returning, written.unwrap_or_default(), txn)?,
                None => StatementResult::Insert { count },
            }
        }
        Plan::Update { table, source, set, returning } => {
            // Read every target row before writing any, so the scan never sees its own writes.
            let rows = collect_held(execute_node(source, txn)?, txn)?;
            let count = rows.len() as u64;
            let mut written = returning.as_ref().map(|_| Vec::new());
            for mut old in rows {
                let key = old.pop().ok_or_else(|| missing_key(&table))?;
                let mut new = old.clone();
                for (column, expr) in &set {
                    // Every assignment sees the old row, as in standard SQL.
                    new[*column] = expr.evaluate(&old)?;
                }
                // Past the table's columns: correlated subqueries' results.
                old.truncate(table.columns.len());
                new.truncate(table.columns.len());
                let new = table.prepare_row(new)?;
                if let Some(written) = &mut written {
                    written.push(new.clone());
                }
                txn.update(&table, &key, &old, new)?;
            }
            match returning {
                Some(returning) => returned(&returning, written.unwrap_or_default(), txn)?,
                None => StatementResult::Update { count },
            }
        }
        Plan::Delete { table, source, returning } => {
            let rows = collect_held(execute_node(source, txn)?, txn)?;
            let count = rows.len() as u64;
            let mut deleted = returning.as_ref().map(|_| Vec::new());
            for mut row in rows {
                let key = row.pop().ok_or_else(|| missing_key(&table))?;
                row.truncate(table.columns.len());
                txn.delete(&table, &key, &row)?;
                if let Some(deleted) = &mut deleted {
                    deleted.push(row);
                }
            }
            match returning {
                Some(returning) => returned(&returning, deleted.unwrap_or_default(), txn)?,
                None => StatementResult::Delete { count },
            }
        }
        Plan::CreateTable { schema, if_not_exists } => {
            let name = schema.name.clone();
            match txn.create_table(schema) {
                Err(Error::TableExists(_)) if if_not_exists => {}
                result => {
                    result?;
                    super::retention::ensure_ttl_index(txn, &name)?;
                }
            }
            StatementResult::CreateTable { name }
        }
        Plan::CreateView { view, if_not_exists } => {
            let name = view.name.clone();
            match txn.create_view(view) {
                Err(Error::TableExists(_)) if if_not_exists => {}
                result => result?,
            }
            StatementResult::CreateView { name }
        }
        Plan::CreateRollup { source, rollup, state, view, if_not_exists } => {
            txn.mvcc_mut().lock_exclusive()?;
            let name = rollup.name.clone();
            if if_not_exists && crate::sql::planner::rollup::find_rollup(txn, &name)?.is_some() {
                return Ok(StatementResult::CreateView { name });
            }
            let state_name = state.name.clone();
            txn.create_table(*state)?;
            super::retention::ensure_ttl_index(txn, &state_name)?;
            txn.create_view(*view)?;
            let mut schema = txn.must_get_table(&source)?;
            schema.rollups.push(*rollup.clone());
            txn.replace_table(&schema)?;
            super::rollup::backfill(txn, &schema, &rollup)?;
            StatementResult::CreateView { name }
        }
        Plan::DropRollup { name, if_exists } => {
            txn.mvcc_mut().lock_exclusive()?;
            match crate::sql::planner::rollup::find_rollup(txn, &name)? {
                Some((mut source, rollup)) => {
                    source.rollups.retain(|r| r.name != name);
                    txn.replace_table(&source)?;
                    txn.drop_view(&name)?;
                    txn.drop_table(&rollup.state_table)?;
                    StatementResult::DropView { name, existed: true }
                }
                None if if_exists => StatementResult::DropView { name, existed: false },
                None => return Err(Error::Invalid(format!("rollup \"{name}\" does not exist"))),
            }
        }
        Plan::DropView { name, if_exists } => {
            if crate::sql::planner::rollup::find_rollup(txn, &name)?.is_some() {
                return Err(Error::Invalid(format!("\"{name}\" is a rollup: DROP ROLLUP {name}")));
            }
            let existed = txn.drop_view(&name)?;
            if !existed && !if_exists {
                return Err(Error::Invalid(format!("view \"{name}\" does not exist")));
            }
            StatementResult::DropView { name, existed }
        }
        Plan::DropTable { name, if_exists } => {
            txn.mvcc_mut().lock_exclusive()?;
            if let Some(table) = txn.get_table(&name)? {
                if let Some(rollup) = &table.rollup_of {
                    return Err(Error::Invalid(format!(
                        "\"{name}\" holds the state of rollup \"{rollup}\": DROP ROLLUP {rollup}"
                    )));
                }
                if let Some(rollup) = table.rollups.first() {
                    return Err(Error::Invalid(format!(
                        "\"{name}\" feeds rollup \"{}\": drop its rollups first",
                        rollup.name
                    )));
                }
            }
            let existed = txn.drop_table(&name)?;
            if !existed && !if_exists {
                return Err(Error::UnknownTable(name));
            }
            StatementResult::DropTable { name, existed }
        }
        Plan::CreateIndex { table, index, if_not_exists } => {
            txn.mvcc_mut().lock_exclusive()?;
            let name = index.name.clone();
            match txn.create_index(&table, index) {
                Err(Error::IndexExists(_)) if if_not_exists => {}
                result => result?,
            }
            StatementResult::CreateIndex { name }
        }
        Plan::Reindex { name } => StatementResult::Reindex { name },
        Plan::AlterTable { name, ttl } => {
            txn.mvcc_mut().lock_exclusive()?;
            txn.set_ttl(&name, ttl)?;
            super::retention::ensure_ttl_index(txn, &name)?;
            StatementResult::AlterTable { name }
        }
        Plan::Users(statement) => {
            StatementResult::Users { message: txn.execute_user_statement(&statement)? }
        }
        Plan::Analyze { tables } => {
            let mut rows = Vec::new();
            for name in tables {
                let statistics = txn.analyze(&name)?;
                rows.push(vec![Value::String(name), Value::Integer(statistics.rows as i64)]);
            }
            let columns = vec![
                crate::sql::planner::OutputColumn {
                    name: "table".into(),
                    datatype: Some(crate::sql::types::DataType::String),
                },
                crate::sql::planner::OutputColumn {
                    name: "rows".into(),
                    datatype: Some(crate::sql::types::DataType::Integer),
                },
            ];
            StatementResult::Query { columns, rows }
        }
        Plan::DropIndex { name, if_exists } => {
            txn.mvcc_mut().lock_exclusive()?;
            let existed = txn.drop_index(&name)?;
            if !existed && !if_exists {
                return Err(Error::UnknownIndex(name));
            }
            StatementResult::DropIndex { name, existed }
        }
    })
}

/// Collects rows that the statement holds in memory until it ends, counting them against its
/// budget.
fn collect_held(rows: Rows<'_>, txn: &Txn) -> Result<Vec<Row>> {
    let mut held = Vec::new();
    for row in rows {
        let row = row?;
        txn.budget().hold(&row)?;
        held.push(row);
    }
    Ok(held)
}

fn missing_key(table: &Table) -> Error {
    Error::Invalid(format!("internal error: row of {} without its key", table.name))
}

/// The key bounds of a full or key-range access.
fn key_range(access: Access) -> (Bound<Value>, Bound<Value>) {
    match access {
        Access::KeyRange(start, end) => (start, end),
        _ => (Bound::Unbounded, Bound::Unbounded),
    }
}

/// Passes on a row for which `predicate` is true, and errors; drops the rest.
fn keep(row: Result<Row>, predicate: &Expression) -> Option<Result<Row>> {
    let row = match row {
        Ok(row) => row,
        Err(error) => return Some(Err(error)),
    };
    match predicate.evaluate(&row).and_then(|v| v.is_true()) {
        Ok(true) => Some(Ok(row)),
        Ok(false) => None,
        Err(error) => Some(Err(error)),
    }
}

/// A write's RETURNING result: its list evaluated over each row written (or deleted), in the
/// order written. The rows count against the statement's memory budget.
fn returned(returning: &Returning, rows: Vec<Row>, txn: &Txn) -> Result<StatementResult> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let values =
            returning.expressions.iter().map(|e| e.evaluate(&row)).collect::<Result<Row>>()?;
        txn.budget().hold(&values)?;
        out.push(values);
    }
    Ok(StatementResult::Query { columns: returning.columns.clone(), rows: out })
}

/// Runs a query node, yielding its rows.
pub fn execute_node(node: Node, txn: &Txn) -> Result<Rows<'_>> {
    Ok(match node {
        Node::Scan {
            table,
            access: access @ (Access::Full | Access::KeyRange(..)),
            filter,
            with_key: false,
            ..
        } => {
            // The key is not wanted: read the rows alone, which skips decoding keys.
            let rows = txn.scan_rows(&table, key_range(access));
            match filter {
                None => Box::new(rows),
                Some(filter) => Box::new(rows.filter_map(move |row| keep(row, &filter))),
            }
        }
        Node::Scan { table, access, filter, with_key, .. } => {
            let keyed: Box<dyn Iterator<Item = Result<(Value, Row)>> + '_> = match access {
                Access::Full => Box::new(txn.scan(&table, (Bound::Unbounded, Bound::Unbounded))),
                Access::KeyRange(start, end) => Box::new(txn.scan(&table, (start, end))),
                Access::KeyRangeBackward(start, end) => {
                    Box::new(txn.scan_ordered(&table, (start, end), true))
                }
                Access::Keys(keys) => {
                    let mut rows = Vec::new();
                    for key in keys {
                        if let Some(row) = txn.get(&table, &key)? {
                            txn.budget().hold(&row)?;
                            rows.push(Ok((key, row)));
                        }
                    }
                    Box::new(rows.into_iter())
                }
                Access::IndexScan { index, prefix, range, reverse } => {
                    let keys = txn.scan_index(&table, &index, &prefix, range.map(|r| *r), reverse);
                    let name = index.name.clone();
                    let table = table.clone();
                    Box::new(keys.map(move |key| {
                        let key = key?;
                        let row = txn.get(&table, &key)?.ok_or_else(|| {
                            Error::Invalid(format!("index {name} points to a missing row"))
                        })?;
                        Ok((key, row))
                    }))
                }
                Access::Index { index, values } => {
                    let mut rows = Vec::new();
                    for prefix in &values {
                        for key in txn.lookup_index(&table, &index, prefix)? {
                            let row = txn.get(&table, &key)?.ok_or_else(|| {
                                Error::Invalid(format!(
                                    "index {} points to a missing row",
                                    index.name
                                ))
                            })?;
                            txn.budget().hold(&row)?;
                            rows.push(Ok((key, row)));
                        }
                    }
                    Box::new(rows.into_iter())
                }
            };
            Box::new(keyed.filter_map(move |item| {
                let (key, mut row) = match item {
                    Ok(pair) => pair,
                    Err(error) => return Some(Err(error)),
                };
                if let Some(filter) = &filter {
                    match filter.evaluate(&row).and_then(|v| v.is_true()) {
                        Ok(true) => {}
                        Ok(false) => return None,
                        Err(error) => return Some(Err(error)),
                    }
                }
                if with_key {
                    row.push(key);
                }
                Some(Ok(row))
            }))
        }
        Node::Filter { source, predicate } => {
            let source = execute_node(*source, txn)?;
            Box::new(source.filter_map(move |row| keep(row, &predicate)))
        }
        Node::Projection { source, expressions } => {
            let source = execute_node(*source, txn)?;
            Box::new(source.map(move |row| {
                let row = row?;
                expressions.iter().map(|e| e.evaluate(&row)).collect()
            }))
        }
        Node::Window { source, functions } => {
            let rows = collect_held(execute_node(*source, txn)?, txn)?;
            Box::new(super::window::compute(rows, &functions, txn.budget())?.into_iter().map(Ok))
        }
        Node::Aggregate { source, group_by, aggregates } => {
            let reads_no_column = |filter: &Option<Expression>| {
                let expressions = filter
                    .iter()
                    .chain(&group_by)
                    .chain(aggregates.iter().flat_map(|a| a.arg.iter().chain(&a.second)));
                expressions.into_iter().all(|e| e.columns().is_empty())
            };
            let rows: Rows<'_> = match *source {
                // Only the number of rows matters (COUNT(*), constants): skip decoding them,
                // and give the aggregate an empty row per stored one.
                Node::Scan {
                    table,
                    access: access @ (Access::Full | Access::KeyRange(..)),
                    filter,
                    with_key: false,
                    ..
                } if reads_no_column(&filter) => {
                    let rows = txn
                        .scan_undecoded(&table, key_range(access))
                        .map(|item| item.map(|()| Row::new()));
                    match filter {
                        None => Box::new(rows),
                        Some(filter) => Box::new(rows.filter_map(move |row| keep(row, &filter))),
                    }
                }
                source => execute_node(source, txn)?,
            };
            aggregate::aggregate(rows, &group_by, &aggregates, txn.budget())?
        }
        Node::Order { source, keys } => {
            let mut rows = Vec::new();
            for row in execute_node(*source, txn)? {
                let row = row?;
                txn.budget().hold(&row)?;
                let sort_key =
                    keys.iter().map(|k| k.expr.evaluate(&row)).collect::<Result<Vec<_>>>()?;
                rows.push((sort_key, row));
            }
            rows.sort_by(|(a, _), (b, _)| {
                for ((x, y), key) in a.iter().zip(b).zip(&keys) {
                    let ordering = match (x.is_null(), y.is_null()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) if key.nulls_first => std::cmp::Ordering::Less,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) if key.nulls_first => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        (false, false) if key.descending => y.cmp(x),
                        (false, false) => x.cmp(y),
                    };
                    if ordering != std::cmp::Ordering::Equal {
                        return ordering;
                    }
                }
                std::cmp::Ordering::Equal
            });
            Box::new(rows.into_iter().map(|(_, row)| Ok(row)))
        }
        Node::Offset { source, offset } => Box::new(
            execute_node(*source, txn)?.skip(usize::try_from(offset).unwrap_or(usize::MAX)),
        ),
        Node::Limit { source, limit } => {
            Box::new(execute_node(*source, txn)?.take(usize::try_from(limit).unwrap_or(usize::MAX)))
        }
        Node::Distinct { source } => {
            super::set::distinct(execute_node(*source, txn)?, txn.budget())
        }
        Node::SetOperation { op, left, right } => {
            let (left, right) = (execute_node(*left, txn)?, execute_node(*right, txn)?);
            super::set::combine(op, left, right, txn.budget())?
        }
        Node::NestedLoopJoin { left, right, right_width, predicate, outer } => {
            let (left, right) = (execute_node(*left, txn)?, execute_node(*right, txn)?);
            join::nested_loop(left, right, right_width, predicate, outer, txn.budget())?
        }
        Node::HashJoin { left, left_column, right, right_column, right_width, outer } => {
            let (left, right) = (execute_node(*left, txn)?, execute_node(*right, txn)?);
            join::hash(left, left_column, right, right_column, right_width, outer, txn.budget())?
        }
        Node::Apply { source, subquery, params, kind, .. } => {
            super::apply::apply(execute_node(*source, txn)?, *subquery, params, kind, txn)
        }
        Node::SemiJoin { left, left_keys, right, anti, .. } => {
            let (left, right) = (execute_node(*left, txn)?, execute_node(*right, txn)?);
            super::apply::semi_join(left, left_keys, right, anti, txn)?
        }
        Node::Recursive { initial, step, id, distinct, .. } => {
            super::recursive::recursive(execute_node(*initial, txn)?, *step, id, distinct, txn)
        }
        Node::WorkingTable { name, .. } => {
            return Err(Error::Invalid(format!(
                "internal error: the working table of {name} read outside its recursion"
            )));
        }
        Node::Series { start, stop, step } => super::series::rows(start, stop, step, txn.budget())?,
        Node::Values { rows } => {
            let rows: Vec<Result<Row>> =
                rows.into_iter().map(|row| row.iter().map(|e| e.evaluate(&[])).collect()).collect();
            Box::new(rows.into_iter())
        }
    })
}
