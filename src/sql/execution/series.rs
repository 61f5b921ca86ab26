//! `generate_series` rows, produced one at a time (a long series holds nothing); each row
//! counts as a row read, so a query's deadline and cancellation reach it.

use super::Rows;
use crate::sql::budget::Budget;
use crate::sql::error::{Error, Result};
use crate::sql::types::{Interval, Value};

/// The rows from `start` to `stop` (inclusive, in the step's direction) by `step`.
pub(super) fn rows<'a>(
    start: Value,
    stop: Value,
    step: Value,
    budget: &'a Budget,
) -> Result<Rows<'a>> {
    match (start, stop, step) {
        (Value::Integer(start), Value::Integer(stop), Value::Integer(step)) => {
            let mut next = Some(start);
            Ok(Box::new(std::iter::from_fn(move || {
                let value = next?;
                let within = if step > 0 { value <= stop } else { value >= stop };
                if !within {
                    return None;
                }
                if let Err(error) = budget.tick() {
                    next = None;
                    return Some(Err(error));
                }
                next = value.checked_add(step);
                Some(Ok(vec![Value::Integer(value)]))
            })))
        }
        (Value::Timestamp(start), Value::Timestamp(stop), Value::Interval(step)) => {
            let forward = step.length() > 0;
            let mut n: i64 = 0;
            let mut done = false;
            Ok(Box::new(std::iter::from_fn(move || {
                if done {
                    return None;
                }
                // Each value from the start, so months do not drift (Jan 31, Feb 29, Mar 31).
                let times = |part: i64| part.checked_mul(n);
                let offset = (|| {
                    Some(Interval {
                        months: i32::try_from(times(i64::from(step.months))?).ok()?,
                        days: i32::try_from(times(i64::from(step.days))?).ok()?,
                        micros: times(step.micros)?,
                    })
                })();
                let Some(value) = offset.and_then(|offset| offset.add_to(start).ok()) else {
                    done = true;
                    return None;
                };
                if (forward && value > stop) || (!forward && value < stop) {
                    done = true;
                    return None;
                }
                n += 1;
                if let Err(error) = budget.tick() {
                    done = true;
                    return Some(Err(error));
                }
                Some(Ok(vec![Value::Timestamp(value)]))
            })))
        }
        _ => Err(Error::Invalid("generate_series(): invalid arguments".into())),
    }
}
