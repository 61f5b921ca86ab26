//! Grouping and aggregate functions.
//!
//! Groups are kept in a `BTreeMap`, so output is ordered by group values and identical on
//! every replica (a hash map's order would depend on the process). Values are accumulated in
//! input order, so floating-point sums are reproducible too.

use super::Rows;
use crate::sql::budget::Budget;
use crate::sql::error::{Error, Result};
use crate::sql::planner::{Aggregate, AggregateFunction, Expression};
use crate::sql::types::{ArithmeticOp, Row, Value};
use std::collections::{BTreeMap, HashSet};

/// The running state of one aggregate in one group.
#[derive(Clone, Debug)]
pub(super) struct Accumulator {
    function: AggregateFunction,
    /// Values already seen, for DISTINCT.
    seen: Option<HashSet<Value>>,
    count: i64,
    /// SUM and AVG: the running sum (NULL until the first value).
    sum: Value,
    /// MIN and MAX: the best value so far.
    best: Value,
    /// GROUP_CONCAT: the text so far (none until the first value).
    text: Option<String>,
    /// FIRST and LAST: the time of `best` (NULL until a value came).
    at: Value,
}

impl Accumulator {
    /// A fresh state for `function` (no DISTINCT), for window frames.
    pub(super) fn of(function: AggregateFunction) -> Self {
        Self::new(&Aggregate { function, arg: None, distinct: false, second: None })
    }

    fn new(aggregate: &Aggregate) -> Self {
        Self {
            function: aggregate.function,
            seen: aggregate.distinct.then(HashSet::new),
            count: 0,
            sum: Value::Null,
            best: Value::Null,
            text: None,
            at: Value::Null,
        }
    }

    /// Adds one input value (`None` for COUNT(*), which counts rows), with GROUP_CONCAT's
    /// separator for it. A DISTINCT aggregate holds each new value, and GROUP_CONCAT its text
    /// (counted against `budget`).
    pub(super) fn add(
        &mut self,
        value: Option<Value>,
        separator: Option<Value>,
        budget: &Budget,
    ) -> Result<()> {
        let Some(value) = value else {
            self.count += 1;
            return Ok(());
        };
        if value.is_null() {
            return Ok(());
        }
        if let Some(seen) = &mut self.seen {
            if seen.contains(&value) {
                return Ok(());
            }
            budget.hold(std::slice::from_ref(&value))?;
            seen.insert(value.clone());
        }
        self.count += 1;
        match self.function {
            AggregateFunction::Count => {}
            AggregateFunction::Sum | AggregateFunction::Avg => {
                if !matches!(value, Value::Integer(_) | Value::Float(_)) {
                    return Err(Error::TypeMismatch(format!("cannot sum {}", value.to_sql())));
                }
                self.sum = match &self.sum {
                    Value::Null => value,
                    sum => sum.arithmetic(ArithmeticOp::Add, &value)?,
                };
            }
            AggregateFunction::Min | AggregateFunction::Max => {
                let replace = match self.best.compare(&value)? {
                    None => true, // first value
                    Some(ordering) => {
                        (self.function == AggregateFunction::Min)
                            == (ordering == std::cmp::Ordering::Greater)
                    }
                };
                if replace {
                    self.best = value;
                }
            }
            AggregateFunction::First | AggregateFunction::Last => {
                let Some(at) = separator.filter(|at| !at.is_null()) else { return Ok(()) };
                let candidate = (at, value);
                let current = (
                    std::mem::replace(&mut self.at, Value::Null),
                    std::mem::replace(&mut self.best, Value::Null),
                );
                let keep_new = current.0.is_null()
                    || match self.function {
                        AggregateFunction::First => candidate < current,
                        _ => candidate > current,
                    };
                (self.at, self.best) = if keep_new { candidate } else { current };
            }
            AggregateFunction::GroupConcat => {
                let piece = match self.text {
                    None => value.to_string(),
                    // A NULL separator joins with nothing, as in SQLite.
                    Some(_) => match separator {
                        None => format!(",{value}"),
                        Some(Value::Null) => value.to_string(),
                        Some(separator) => format!("{separator}{value}"),
                    },
                };
                let piece = Value::String(piece);
                budget.hold(std::slice::from_ref(&piece))?;
                let Value::String(piece) = piece else { return Ok(()) };
                match &mut self.text {
                    None => self.text = Some(piece),
                    Some(text) => text.push_str(&piece),
                }
            }
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Value {
        match self.function {
            AggregateFunction::Count => Value::Integer(self.count),
            AggregateFunction::Sum => self.sum,
            AggregateFunction::Avg => match self.sum {
                Value::Integer(sum) => Value::Float(sum as f64 / self.count as f64),
                Value::Float(sum) => Value::Float(sum / self.count as f64),
                _ => Value::Null,
            },
            AggregateFunction::Min
            | AggregateFunction::Max
            | AggregateFunction::First
            | AggregateFunction::Last => self.best,
            AggregateFunction::GroupConcat => self.text.map_or(Value::Null, Value::String),
        }
    }
}

/// Groups the source rows and computes the aggregates of each group.
pub fn aggregate<'a>(
    source: Rows<'a>,
    group_by: &[Expression],
    aggregates: &[Aggregate],
    budget: &Budget,
) -> Result<Rows<'a>> {
    let mut groups: BTreeMap<Vec<Value>, Vec<Accumulator>> = BTreeMap::new();
    for row in source {
        let row = row?;
        let key = group_by.iter().map(|e| e.evaluate(&row)).collect::<Result<Vec<_>>>()?;
        let accumulators = match groups.get_mut(&key) {
            Some(accumulators) => accumulators,
            None => {
                // A new group is held until the statement ends.
                budget.hold(&key)?;
                groups
                    .entry(key)
                    .or_insert_with(|| aggregates.iter().map(Accumulator::new).collect())
            }
        };
        for (accumulator, aggregate) in accumulators.iter_mut().zip(aggregates) {
            let value = aggregate.arg.as_ref().map(|arg| arg.evaluate(&row)).transpose()?;
            let separator = match (&value, &aggregate.second) {
                (Some(value), Some(separator)) if !value.is_null() => {
                    Some(separator.evaluate(&row)?)
                }
                _ => None,
            };
            accumulator.add(value, separator, budget)?;
        }
    }
    // Without GROUP BY there is exactly one group, even for no rows.
    if groups.is_empty() && group_by.is_empty() {
        groups.insert(Vec::new(), aggregates.iter().map(Accumulator::new).collect());
    }
    Ok(Box::new(groups.into_iter().map(|(mut key, accumulators): (Row, Vec<Accumulator>)| {
        key.extend(accumulators.into_iter().map(Accumulator::finish));
        Ok(key)
    })))
}
