//! Correlated subqueries: per row ([`Node::Apply`]) or decorrelated into a semi-join
//! ([`Node::SemiJoin`]).
//!
//! An Apply binds its subquery to each input row's parameter values, optimizes the bound tree
//! (an outer value compared with a key becomes a key lookup) and runs it. Rows with equal
//! parameter values (of the same types) share one run: the results of up to
//! [`MAX_REMEMBERED`] distinct bindings are kept (keys and results count against the
//! statement's memory budget). Determinism: the cache
//! is only looked up, never iterated, and output follows the input's order.

use super::Rows;
use super::evaluate::InTest;
use super::executor::execute_node;
use crate::sql::engine::Txn;
use crate::sql::error::{Error, Result};
use crate::sql::planner::{ApplyKind, Expression, Node, optimize_query};
use crate::sql::types::{DataType, Row, Value};
use std::collections::{HashMap, HashSet};

/// How many distinct bindings an Apply remembers the result of.
pub const MAX_REMEMBERED: usize = 4096;

/// Runs `subquery` for each row of `source`, appending its result (see [`ApplyKind`]).
pub fn apply<'a>(
    source: Rows<'a>,
    subquery: Node,
    params: Vec<Expression>,
    kind: ApplyKind,
    txn: &'a Txn,
) -> Rows<'a> {
    let mut remembered: HashMap<(Vec<Value>, Vec<Option<DataType>>), Value> = HashMap::new();
    Box::new(source.map(move |row| {
        let mut row = row?;
        let mut key = params.iter().map(|p| p.evaluate(&row)).collect::<Result<Vec<_>>>()?;
        let binding = key.len();
        if let ApplyKind::In { operand, .. } = &kind {
            key.push(operand.evaluate(&row)?);
        }
        // Equal values of different types (1 and 1.0) may give different results.
        let types = key.iter().map(Value::datatype).collect();
        let key = (key, types);
        let value = match remembered.get(&key) {
            Some(value) => value.clone(),
            None => {
                txn.budget().tick()?;
                let bound = optimize_query(subquery.clone().bind_outer(&key.0[..binding]));
                let value = run(bound, &kind, key.0.get(binding), txn)?;
                if remembered.len() < MAX_REMEMBERED {
                    txn.budget().hold(&key.0)?;
                    txn.budget().hold(std::slice::from_ref(&value))?;
                    remembered.insert(key, value.clone());
                }
                value
            }
        };
        row.push(value);
        Ok(row)
    }))
}

/// Runs a bound subquery for one row: its result per `kind` (`operand` is IN's value).
fn run(node: Node, kind: &ApplyKind, operand: Option<&Value>, txn: &Txn) -> Result<Value> {
    let mut rows = execute_node(node, txn)?;
    let first_column = |row: Row| row.into_iter().next().unwrap_or(Value::Null);
    Ok(match kind {
        ApplyKind::Value => match (rows.next().transpose()?, rows.next().transpose()?) {
            (_, Some(_)) => {
                return Err(Error::Invalid(
                    "a subquery used as a value returned more than one row".into(),
                ));
            }
            (first, None) => first.map_or(Value::Null, first_column),
        },
        ApplyKind::Exists => Value::Boolean(rows.next().transpose()?.is_some()),
        ApplyKind::In { negated, .. } => {
            let mut test = InTest::new(operand.cloned().unwrap_or(Value::Null));
            for row in rows {
                if test.decided() {
                    break;
                }
                test.offer(&first_column(row?))?;
            }
            test.result(*negated)?
        }
    })
}

/// Keeps the rows of `left` whose `left_keys` equal some row of `right` (with `anti`, those
/// that equal none). A key holding NULL equals nothing.
pub fn semi_join<'a>(
    left: Rows<'a>,
    left_keys: Vec<Expression>,
    right: Rows<'a>,
    anti: bool,
    txn: &'a Txn,
) -> Result<Rows<'a>> {
    let mut keys: HashSet<Row> = HashSet::new();
    for row in right {
        let row = row?;
        if row.iter().any(Value::is_null) || keys.contains(&row) {
            continue;
        }
        txn.budget().hold(&row)?;
        keys.insert(row);
    }
    Ok(Box::new(left.filter_map(move |row| {
        let row = match row {
            Ok(row) => row,
            Err(error) => return Some(Err(error)),
        };
        let key = match left_keys.iter().map(|k| k.evaluate(&row)).collect::<Result<Row>>() {
            Ok(key) => key,
            Err(error) => return Some(Err(error)),
        };
        let matched = !key.iter().any(Value::is_null) && keys.contains(&key);
        (matched != anti).then_some(Ok(row))
    })))
}
