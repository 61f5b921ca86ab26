//! Keeping rollups up to date: the rows an INSERT adds to a table are folded into each of its
//! rollups' state rows in the same transaction (so on every replica, in log order), and
//! CREATE ROLLUP folds in the rows already there. Groups are visited in key order and the
//! state is integers, floats and min/max values, so every replica writes the same bytes.

use crate::sql::engine::{Rollup, RollupFunction, Table, Txn};
use crate::sql::error::{Error, Result};
use crate::sql::planner::rollup::{CompiledRollup, compile};
use crate::sql::types::{ArithmeticOp, Row, Value};
use std::collections::BTreeMap;
use std::ops::Bound;

/// How many source rows CREATE ROLLUP folds in at a time (bounds what it holds).
const BACKFILL_CHUNK: usize = 1024;

/// One aggregate's running state for one group.
#[derive(Clone, Debug)]
enum State {
    Count(i64),
    Sum(Value),
    Min(Value),
    Max(Value),
    /// The sum (NULL until a value came) and the count of values.
    Avg(Value, i64),
    /// FIRST: the value kept and its time (NULL until a value came).
    First(Value, Value),
    /// LAST: the value kept and its time.
    Last(Value, Value),
}

impl State {
    fn empty(function: RollupFunction) -> State {
        match function {
            RollupFunction::Count => State::Count(0),
            RollupFunction::Sum => State::Sum(Value::Null),
            RollupFunction::Min => State::Min(Value::Null),
            RollupFunction::Max => State::Max(Value::Null),
            RollupFunction::Avg => State::Avg(Value::Null, 0),
            RollupFunction::First => State::First(Value::Null, Value::Null),
            RollupFunction::Last => State::Last(Value::Null, Value::Null),
        }
    }

    /// Folds in a value at a time (FIRST, LAST: as the aggregate does, skipping NULLs and
    /// breaking a tie in time by the value).
    fn add_at(&mut self, value: Value, at: Value) {
        if value.is_null() || at.is_null() {
            return;
        }
        let (first, kept, kept_at) = match self {
            State::First(v, t) => (true, v, t),
            State::Last(v, t) => (false, v, t),
            _ => return,
        };
        let candidate = (at, value);
        let current = (kept_at.clone(), kept.clone());
        let better = kept_at.is_null()
            || match first {
                true => candidate < current,
                false => candidate > current,
            };
        if better {
            (*kept_at, *kept) = candidate;
        }
    }

    /// Folds in one row's argument (`None`: COUNT(*), every row counts).
    fn add(&mut self, value: Option<Value>) -> Result<()> {
        let Some(value) = value else {
            if let State::Count(n) = self {
                *n += 1;
            }
            return Ok(());
        };
        if value.is_null() {
            return Ok(());
        }
        match self {
            State::Count(n) => *n += 1,
            State::Sum(sum) => *sum = add(sum, &value)?,
            State::Min(min) => {
                if min.is_null() || value < *min {
                    *min = value;
                }
            }
            State::Max(max) => {
                if max.is_null() || value > *max {
                    *max = value;
                }
            }
            State::Avg(sum, n) => {
                *sum = add(sum, &value.cast(crate::sql::types::DataType::Float)?)?;
                *n += 1;
            }
            // Folded in by `add_at`.
            State::First(..) | State::Last(..) => {}
        }
        Ok(())
    }

    /// The state's stored columns.
    fn columns(self, out: &mut Row) {
        match self {
            State::Count(n) => out.push(Value::Integer(n)),
            State::Sum(v) | State::Min(v) | State::Max(v) => out.push(v),
            State::Avg(sum, n) => out.extend([sum, Value::Integer(n)]),
            State::First(v, t) | State::Last(v, t) => out.extend([v, t]),
        }
    }

    /// The state stored in `columns` (what [`State::columns`] wrote).
    fn read(function: RollupFunction, columns: &[Value]) -> State {
        let at = |i: usize| columns.get(i).cloned().unwrap_or(Value::Null);
        let count = |i: usize| match at(i) {
            Value::Integer(n) => n,
            _ => 0,
        };
        match function {
            RollupFunction::Count => State::Count(count(0)),
            RollupFunction::Sum => State::Sum(at(0)),
            RollupFunction::Min => State::Min(at(0)),
            RollupFunction::Max => State::Max(at(0)),
            RollupFunction::Avg => State::Avg(at(0), count(1)),
            RollupFunction::First => State::First(at(0), at(1)),
            RollupFunction::Last => State::Last(at(0), at(1)),
        }
    }
}

/// NULL-absorbing addition: NULL + x is x.
fn add(a: &Value, b: &Value) -> Result<Value> {
    match (a, b) {
        (Value::Null, other) | (other, Value::Null) => Ok(other.clone()),
        (a, b) => a.arithmetic(ArithmeticOp::Add, b),
    }
}

/// The rows that count, by group, in input order.
fn group<'a>(
    rollup: &Rollup,
    compiled: &CompiledRollup,
    rows: impl Iterator<Item = &'a Row>,
) -> Result<BTreeMap<Vec<Value>, Vec<&'a Row>>> {
    let mut groups: BTreeMap<Vec<Value>, Vec<&'a Row>> = BTreeMap::new();
    for row in rows {
        if let Some(filter) = &compiled.filter
            && !filter.evaluate(row)?.is_true()?
        {
            continue;
        }
        let key = compiled.groups.iter().map(|g| g.evaluate(row)).collect::<Result<Vec<_>>>()?;
        if let Some(i) = key.iter().position(Value::is_null) {
            return Err(Error::Invalid(format!(
                "rollup \"{}\" groups rows by \"{}\", which is NULL in a row written",
                rollup.name, rollup.columns[i]
            )));
        }
        groups.entry(key).or_default().push(row);
    }
    Ok(groups)
}

/// Folds `row` into a group's states.
fn fold(states: &mut [State], compiled: &CompiledRollup, row: &Row) -> Result<()> {
    for (state, (_, arg, by)) in states.iter_mut().zip(&compiled.aggregates) {
        let value = arg.as_ref().map(|a| a.evaluate(row)).transpose()?;
        match (by, value) {
            (Some(by), Some(value)) => state.add_at(value, by.evaluate(row)?),
            (_, value) => state.add(value)?,
        }
    }
    Ok(())
}

/// The state row of group `key`, with its row key, if the group has one.
fn find_state(txn: &Txn, state: &Table, key: &[Value]) -> Result<Option<(Value, Row)>> {
    let row_key = match state.primary_key {
        Some(_) => Some(key[0].clone()),
        None => {
            let key_columns: Vec<usize> = (0..key.len()).collect();
            let index = state
                .indexes
                .iter()
                .find(|i| i.constraint && i.unique && i.columns == key_columns)
                .ok_or_else(|| {
                    Error::Invalid(format!("rollup state table {} has no key", state.name))
                })?;
            txn.lookup_index(state, index, key)?.into_iter().next()
        }
    };
    let Some(row_key) = row_key else { return Ok(None) };
    Ok(txn.get(state, &row_key)?.map(|row| (row_key, row)))
}

/// Folds each group's rows into its state row, one row after another onto the stored state
/// (so a float sum adds in the order rows arrived, as a GROUP BY over them in that order
/// would).
fn store(
    txn: &mut Txn,
    rollup: &Rollup,
    compiled: &CompiledRollup,
    groups: BTreeMap<Vec<Value>, Vec<&Row>>,
) -> Result<()> {
    let state = txn.must_get_table(&rollup.state_table)?;
    let functions: Vec<RollupFunction> = rollup.aggregates.iter().map(|a| a.function).collect();
    for (key, rows) in groups {
        let existing = find_state(txn, &state, &key)?;
        let mut states: Vec<State> = match &existing {
            Some((_, old)) => {
                let mut at = key.len();
                let mut states = Vec::with_capacity(functions.len());
                for function in &functions {
                    let width = function.state_width();
                    states
                        .push(State::read(*function, old.get(at..at + width).unwrap_or_default()));
                    at += width;
                }
                states
            }
            None => functions.iter().map(|f| State::empty(*f)).collect(),
        };
        for row in rows {
            fold(&mut states, compiled, row)?;
        }
        let mut row = key;
        for state in states {
            state.columns(&mut row);
        }
        let row = state.prepare_row(row)?;
        match existing {
            Some((row_key, old)) => txn.update(&state, &row_key, &old, row)?,
            None => txn.insert(&state, row)?,
        }
    }
    Ok(())
}

/// Folds rows just written to `table` into each of its rollups.
pub(super) fn maintain(txn: &mut Txn, table: &Table, rows: &[Row]) -> Result<()> {
    for rollup in &table.rollups {
        let compiled = compile(table, rollup)?;
        let groups = group(rollup, &compiled, rows.iter())?;
        store(txn, rollup, &compiled, groups)?;
    }
    Ok(())
}

/// Folds `source`'s visible rows into a new rollup, a chunk at a time.
pub(super) fn backfill(txn: &mut Txn, source: &Table, rollup: &Rollup) -> Result<()> {
    let compiled = compile(source, rollup)?;
    let cutoff = match &source.ttl {
        Some(ttl) => {
            let now = crate::sql::clock::now()?;
            Some((ttl.column, crate::sql::planner::retention::cutoff(ttl, now)?))
        }
        None => None,
    };
    let live = |row: &Row| match cutoff {
        Some((column, cutoff)) => matches!(row[column], Value::Timestamp(t) if t >= cutoff),
        None => true,
    };
    let mut from = Bound::Unbounded;
    loop {
        let chunk: Vec<(Value, Row)> = txn
            .scan(source, (from.clone(), Bound::Unbounded))
            .take(BACKFILL_CHUNK)
            .collect::<Result<_>>()?;
        let Some((last, _)) = chunk.last() else { return Ok(()) };
        from = Bound::Excluded(last.clone());
        let rows = chunk.iter().map(|(_, row)| row).filter(|row| live(row));
        let groups = group(rollup, &compiled, rows)?;
        store(txn, rollup, &compiled, groups)?;
    }
}
