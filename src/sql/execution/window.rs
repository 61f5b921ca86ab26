//! Window functions: each function sorts the rows by partition and order (stably, so ties
//! keep their input order and every replica computes the same), then walks each partition.
//! Rows come out in their input order with one column added per function.
//!
//! Frames are counted in rows. A frame starting at the partition's first row is accumulated
//! as it grows (a running total costs one step per row); another is summed afresh for each
//! row, so it costs its length per row.

use super::aggregate::Accumulator;
use crate::sql::budget::Budget;
use crate::sql::error::{Error, Result};
use crate::sql::parser::ast::FrameBound;
use crate::sql::planner::{AggregateFunction, SortKey, WindowFunction, WindowKind};
use crate::sql::types::{Row, Value};
use std::cmp::Ordering;

/// Appends each function's column to `rows`.
pub(super) fn compute(
    mut rows: Vec<Row>,
    functions: &[WindowFunction],
    budget: &Budget,
) -> Result<Vec<Row>> {
    let mut columns = Vec::with_capacity(functions.len());
    for function in functions {
        columns.push(compute_one(&rows, function, budget)?);
    }
    for (i, row) in rows.iter_mut().enumerate() {
        for column in &mut columns {
            row.push(std::mem::replace(&mut column[i], Value::Null));
        }
    }
    Ok(rows)
}

/// Compares two rows' order values by the sort keys.
fn compare(a: &[Value], b: &[Value], keys: &[SortKey]) -> Ordering {
    for ((x, y), key) in a.iter().zip(b).zip(keys) {
        let ordering = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if key.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if key.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) if key.descending => y.cmp(x),
            (false, false) => x.cmp(y),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// One function's value for every row, in input order.
fn compute_one(rows: &[Row], function: &WindowFunction, budget: &Budget) -> Result<Vec<Value>> {
    let evaluate = |exprs: &[crate::sql::planner::Expression], row: &Row| {
        exprs.iter().map(|e| e.evaluate(row)).collect::<Result<Vec<_>>>()
    };
    // The keys are held like rows: they cost memory as the rows do.
    let held = |exprs: &[crate::sql::planner::Expression]| {
        rows.iter()
            .map(|r| {
                let key = evaluate(exprs, r)?;
                budget.hold(&key)?;
                Ok(key)
            })
            .collect::<Result<Vec<_>>>()
    };
    let order_exprs: Vec<_> = function.order_by.iter().map(|k| k.expr.clone()).collect();
    let partitions = held(&function.partition_by)?;
    let orders = held(&order_exprs)?;
    let mut sorted: Vec<usize> = (0..rows.len()).collect();
    sorted.sort_by(|&a, &b| {
        partitions[a]
            .cmp(&partitions[b])
            .then_with(|| compare(&orders[a], &orders[b], &function.order_by))
    });
    let mut out = vec![Value::Null; rows.len()];
    let mut start = 0;
    while start < sorted.len() {
        let mut end = start + 1;
        while end < sorted.len() && partitions[sorted[end]] == partitions[sorted[start]] {
            end += 1;
        }
        let partition = &sorted[start..end];
        let peers = |a: usize, b: usize| {
            compare(&orders[partition[a]], &orders[partition[b]], &function.order_by)
                == Ordering::Equal
        };
        partition_values(rows, partition, function, &peers, &mut out, budget)?;
        start = end;
    }
    budget.hold(&out)?;
    Ok(out)
}

/// The function's values for one partition (`partition`: row indexes in window order).
fn partition_values(
    rows: &[Row],
    partition: &[usize],
    function: &WindowFunction,
    peers: &dyn Fn(usize, usize) -> bool,
    out: &mut [Value],
    budget: &Budget,
) -> Result<()> {
    let arg = |i: usize, position: usize| -> Result<Value> {
        match function.args.get(i) {
            Some(expr) => expr.evaluate(&rows[partition[position]]),
            None => Ok(Value::Null),
        }
    };
    let len = partition.len();
    match function.kind {
        WindowKind::RowNumber => {
            for (p, &row) in partition.iter().enumerate() {
                out[row] = Value::Integer(p as i64 + 1);
            }
        }
        WindowKind::Rank | WindowKind::DenseRank => {
            let (mut rank, mut dense) = (0i64, 0i64);
            for (p, &row) in partition.iter().enumerate() {
                if p == 0 || !peers(p - 1, p) {
                    rank = p as i64 + 1;
                    dense += 1;
                }
                out[row] = Value::Integer(match function.kind {
                    WindowKind::Rank => rank,
                    _ => dense,
                });
            }
        }
        WindowKind::Lag | WindowKind::Lead => {
            for (p, &row) in partition.iter().enumerate() {
                budget.tick()?;
                let offset = match arg(1, p)? {
                    Value::Null if function.args.len() > 1 => {
                        out[row] = Value::Null;
                        continue;
                    }
                    Value::Null => 1,
                    Value::Integer(n) if n >= 0 => n,
                    other => {
                        return Err(Error::Invalid(format!(
                            "the offset of lag() and lead() must be a non-negative INTEGER, not {}",
                            other.to_sql()
                        )));
                    }
                };
                let target = match function.kind {
                    WindowKind::Lag => (p as i64).checked_sub(offset),
                    _ => (p as i64).checked_add(offset),
                };
                out[row] = match target.filter(|t| (0..len as i64).contains(t)) {
                    Some(t) => arg(0, t as usize)?,
                    None => arg(2, p)?,
                };
            }
        }
        WindowKind::Locf => {
            let mut last = Value::Null;
            for (p, &row) in partition.iter().enumerate() {
                let value = arg(0, p)?;
                if !value.is_null() {
                    last = value;
                }
                out[row] = last.clone();
            }
        }
        WindowKind::Interpolate => interpolate(partition, &arg, out)?,
        WindowKind::FirstValue | WindowKind::LastValue | WindowKind::Aggregate(_) => {
            // Where each row's peers end (the default frame runs to there).
            let mut peer_end = vec![len; len];
            for p in (0..len.saturating_sub(1)).rev() {
                peer_end[p] = if peers(p, p + 1) { peer_end[p + 1] } else { p + 1 };
            }
            frame_values(partition, function, &peer_end, &arg, out, budget)?;
        }
    }
    Ok(())
}

/// A number, or a timestamp as microseconds, as a float (for interpolation).
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Timestamp(t) => Some(*t as f64),
        _ => None,
    }
}

/// INTERPOLATE(x, t) over one partition: each NULL x between two known points gets the value
/// on the line through them at its t.
fn interpolate(
    partition: &[usize],
    arg: &dyn Fn(usize, usize) -> Result<Value>,
    out: &mut [Value],
) -> Result<()> {
    let points =
        (0..partition.len()).map(|p| Ok((arg(0, p)?, arg(1, p)?))).collect::<Result<Vec<_>>>()?;
    let numeric = |value: &Value, what: &str| match value {
        Value::Null => Ok(None),
        v => as_number(v).map(Some).ok_or_else(|| {
            Error::TypeMismatch(format!("interpolate() needs a number {what}, not {}", v.to_sql()))
        }),
    };
    // The next known point after each position, found in one pass from the end.
    let mut next: Vec<Option<(f64, f64)>> = vec![None; points.len()];
    let mut following = None;
    for p in (0..points.len()).rev() {
        next[p] = following;
        if let (Some(t), Some(x)) = (as_number(&points[p].1), as_number(&points[p].0)) {
            following = Some((t, x));
        }
    }
    let mut previous: Option<(f64, f64)> = None;
    for (p, &row) in partition.iter().enumerate() {
        let (x, t) = (numeric(&points[p].0, "value")?, numeric(&points[p].1, "position")?);
        out[row] = match (x, t) {
            (Some(x), _) => {
                if let Some(t) = t {
                    previous = Some((t, x));
                }
                Value::Float(x)
            }
            (None, Some(t)) => match (previous, next[p]) {
                (Some((t0, x0)), Some((t1, x1))) if t1 != t0 => {
                    Value::Float(x0 + (x1 - x0) * (t - t0) / (t1 - t0))
                }
                _ => Value::Null,
            },
            (None, None) => Value::Null,
        };
    }
    Ok(())
}

/// The frame of position `p` in a partition of `len` rows: `[start, end)`, possibly empty.
fn frame(function: &WindowFunction, p: usize, len: usize, peer_end: &[usize]) -> (usize, usize) {
    let Some(frame) = function.frame else {
        if function.order_by.is_empty() {
            return (0, len);
        }
        // The SQL default: from the partition's start to the current row's last peer.
        return (0, peer_end.get(p).copied().unwrap_or(len));
    };
    let bound = |b: FrameBound| -> i128 {
        match b {
            FrameBound::UnboundedPreceding => 0,
            FrameBound::Preceding(n) => p as i128 - i128::from(n),
            FrameBound::CurrentRow => p as i128,
            FrameBound::Following(n) => p as i128 + i128::from(n),
            FrameBound::UnboundedFollowing => len as i128 - 1,
        }
    };
    let start = bound(frame.start).clamp(0, len as i128) as usize;
    let end = (bound(frame.end) + 1).clamp(0, len as i128) as usize;
    (start, end.max(start))
}

/// FIRST_VALUE, LAST_VALUE and aggregates over each row's frame (`peer_end[p]`: the end of
/// `p`'s peers). A frame anchored at either end of the partition is accumulated once, as it
/// grows; another is summed afresh for each row, costing its length.
fn frame_values(
    partition: &[usize],
    function: &WindowFunction,
    peer_end: &[usize],
    arg: &dyn Fn(usize, usize) -> Result<Value>,
    out: &mut [Value],
    budget: &Budget,
) -> Result<()> {
    let len = partition.len();
    let aggregate = match function.kind {
        WindowKind::Aggregate(aggregate) => aggregate,
        kind => {
            for (p, &row) in partition.iter().enumerate() {
                budget.tick()?;
                let (start, end) = frame(function, p, len, peer_end);
                out[row] = match (kind, start < end) {
                    (_, false) => Value::Null,
                    (WindowKind::FirstValue, true) => arg(0, start)?,
                    (_, true) => arg(0, end - 1)?,
                };
            }
            return Ok(());
        }
    };
    // COUNT(*) counts rows; other aggregates their argument's values.
    let value = |position: usize| -> Result<Option<Value>> {
        budget.tick()?;
        match (aggregate, function.args.is_empty()) {
            (AggregateFunction::Count, true) => Ok(None),
            _ => arg(0, position).map(Some),
        }
    };
    let starts_at_first =
        matches!(function.frame.map(|f| f.start), None | Some(FrameBound::UnboundedPreceding));
    let ends_at_last =
        matches!(function.frame.map(|f| f.end), Some(FrameBound::UnboundedFollowing));
    if ends_at_last && !starts_at_first {
        // The frame ends at the partition's last row: accumulate from the end, backwards.
        let mut running = Accumulator::of(aggregate);
        let mut added_from = len;
        for p in (0..len).rev() {
            let (start, _) = frame(function, p, len, peer_end);
            while added_from > start {
                added_from -= 1;
                running.add(value(added_from)?, None, budget)?;
            }
            out[partition[p]] = running.clone().finish();
        }
        return Ok(());
    }
    let mut running = Accumulator::of(aggregate);
    let mut added = 0;
    for (p, &row) in partition.iter().enumerate() {
        let (start, end) = frame(function, p, len, peer_end);
        if starts_at_first && start == 0 && end >= added {
            while added < end {
                running.add(value(added)?, None, budget)?;
                added += 1;
            }
            out[row] = running.clone().finish();
        } else {
            let mut fresh = Accumulator::of(aggregate);
            for position in start..end {
                fresh.add(value(position)?, None, budget)?;
            }
            out[row] = fresh.finish();
        }
    }
    Ok(())
}
