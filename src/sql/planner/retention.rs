//! Retention (TTL): a table's rows expire a fixed interval after the time in their TTL column.
//!
//! - Expired rows are invisible at once: every scan of the table (queries, UPDATE and DELETE)
//!   carries the condition `ttl_column >= now() - ttl`, with the statement's time (the log's
//!   time for a write, so every replica hides the same rows).
//! - They are deleted later, through the log, in batches of bounded size ([`expire_plan`],
//!   proposed by the leader's background task), so the same rows go on every replica and a
//!   large backlog does not stall writes.
//! - The TTL column must be a `TIMESTAMP NOT NULL` column: a row without a time would never
//!   expire and could not be hidden consistently.

use super::plan::{Access, Expression, Node, Plan};
use super::writes::key_last;
use crate::sql::engine::{Table, Ttl};
use crate::sql::error::{Error, Result};
use crate::sql::parser::ast::{BinaryOp, TableChange, TableOption};
use crate::sql::types::{DataType, Interval, Value};

/// The TTL a table has after `change` (its current one, `current`, updated).
pub fn change_ttl(table: &Table, change: &TableChange) -> Result<Option<Ttl>> {
    match change {
        TableChange::Set(options) => ttl_from_options(table, table.ttl.clone(), options),
        TableChange::Reset(names) => {
            for name in names {
                if !matches!(name.as_str(), "ttl" | "ttl_column") {
                    return Err(unknown_option(name));
                }
            }
            match names.iter().any(|n| n == "ttl") {
                true => Ok(None),
                false => Err(Error::Invalid(
                    "RESET (ttl_column) needs RESET (ttl) too: a TTL needs its column".into(),
                )),
            }
        }
    }
}

/// The TTL that `options` give `table`, starting from `current`: `ttl = '<interval>'` and
/// `ttl_column = <column>`.
pub fn ttl_from_options(
    table: &Table,
    current: Option<Ttl>,
    options: &[TableOption],
) -> Result<Option<Ttl>> {
    let (mut after, mut column) = match &current {
        Some(ttl) => (Some(ttl.after), Some(ttl.column)),
        None => (None, None),
    };
    for option in options {
        match option.name.as_str() {
            "ttl" => {
                let interval = Interval::parse(&option.value)?;
                let parts = [i64::from(interval.months), i64::from(interval.days), interval.micros];
                if interval.length() <= 0 || parts.iter().any(|part| *part < 0) {
                    return Err(Error::Invalid(format!(
                        "ttl must be a positive interval, not '{}'",
                        option.value
                    )));
                }
                after = Some(interval);
            }
            "ttl_column" => {
                let index = table.column_index(&option.value)?;
                let c = &table.columns[index];
                if c.datatype != DataType::Timestamp || c.nullable {
                    return Err(Error::Invalid(format!(
                        "ttl_column \"{}\" must be a TIMESTAMP NOT NULL column",
                        c.name
                    )));
                }
                column = Some(index);
            }
            other => return Err(unknown_option(other)),
        }
    }
    match (after, column) {
        (None, None) => Ok(None),
        (Some(after), Some(column)) => Ok(Some(Ttl { after, column })),
        (Some(_), None) => Err(Error::Invalid("ttl needs ttl_column: the rows' time".into())),
        (None, Some(_)) => Err(Error::Invalid("ttl_column needs ttl: how long rows live".into())),
    }
}

fn unknown_option(name: &str) -> Error {
    Error::Invalid(format!("unknown table option \"{name}\" (known: ttl, ttl_column)"))
}

/// The oldest time a row of a table with `ttl` may have and still be visible at `now`.
pub fn cutoff(ttl: &Ttl, now: i64) -> Result<i64> {
    // Before the earliest timestamp, nothing has expired yet.
    Ok(ttl.after.checked_neg()?.add_to(now).unwrap_or(i64::MIN))
}

/// The condition that hides `table`'s expired rows as of the statement's time, if it has a TTL
/// (`qualifier`: the table's name or alias in the query, for EXPLAIN).
pub(super) fn live_rows_filter(table: &Table, qualifier: &str) -> Result<Option<Expression>> {
    let Some(ttl) = &table.ttl else { return Ok(None) };
    let cutoff = cutoff(ttl, crate::sql::clock::now()?)?;
    let Some(ttl_column) = table.columns.get(ttl.column) else { return Ok(None) };
    let name = format!("{qualifier}.{}", ttl_column.name);
    let column = Expression::Column(ttl.column, name);
    Ok(Some(Expression::Binary(
        BinaryOp::GreaterOrEqual,
        Box::new(column),
        Box::new(Expression::Constant(Value::Timestamp(cutoff))),
    )))
}

/// A DELETE of at most `limit` of `table`'s rows that have expired as of `now`, in key order
/// (or the TTL column's, through an index on it): the same rows on every replica.
pub fn expire_plan(table: Table, now: i64, limit: u64) -> Result<Option<Plan>> {
    let Some(source) = expired_rows(&table, now, limit)? else { return Ok(None) };
    Ok(Some(super::optimizer::optimize(Plan::Delete { table, source, returning: None })))
}

/// A query of at most `limit` of `table`'s expired rows as of `now` (whether there are any).
pub fn expired_query(table: &Table, now: i64, limit: u64) -> Result<Option<Plan>> {
    let Some(root) = expired_rows(table, now, limit)? else { return Ok(None) };
    Ok(Some(super::optimizer::optimize(Plan::Select { root, columns: Vec::new() })))
}

/// At most `limit` of `table`'s rows expired as of `now`, each with its key last.
fn expired_rows(table: &Table, now: i64, limit: u64) -> Result<Option<Node>> {
    let Some(ttl) = &table.ttl else { return Ok(None) };
    let cutoff = cutoff(ttl, now)?;
    let Some(ttl_column) = table.columns.get(ttl.column) else { return Ok(None) };
    let column = Expression::Column(ttl.column, ttl_column.name.clone());
    let expired = Expression::Binary(
        BinaryOp::Less,
        Box::new(column),
        Box::new(Expression::Constant(Value::Timestamp(cutoff))),
    );
    let width = table.columns.len();
    let scan = Node::Scan {
        table: Box::new(table.clone()),
        alias: None,
        access: Access::Full,
        filter: Some(expired),
        with_key: true,
    };
    let source = Node::Limit { source: Box::new(scan), limit };
    Ok(Some(key_last(source, width, width + 1)))
}
