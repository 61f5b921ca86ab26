//! Planning `generate_series(start, stop [, step])`, a FROM item: its arguments are constants,
//! checked here (integers with an integer step, 1 by default; timestamps with an interval
//! step), and the rows are produced lazily by the executor.

use super::plan::Node;
use crate::sql::error::{Error, Result};
use crate::sql::execution::evaluate_constant;
use crate::sql::parser::ast;
use crate::sql::types::time::DAY;
use crate::sql::types::{Interval, Value};

/// The most values a series may have: the same limit on every replica, so a series in a
/// replicated statement cannot keep every node busy for hours.
pub const MAX_SERIES_VALUES: i128 = 10_000_000;

/// How many values the series has (at most; month steps count 28-day months).
fn length(start: &Value, stop: &Value, step: &Value) -> i128 {
    let span_and_step = match (start, stop, step) {
        (Value::Integer(a), Value::Integer(b), Value::Integer(s)) => {
            (i128::from(*b) - i128::from(*a), i128::from(*s))
        }
        (Value::Timestamp(a), Value::Timestamp(b), Value::Interval(i)) => {
            let step = match i.months {
                0 => i128::from(i.days) * i128::from(DAY) + i128::from(i.micros),
                months => i128::from(months) * 28 * i128::from(DAY),
            };
            (i128::from(*b) - i128::from(*a), step)
        }
        _ => return 0,
    };
    match span_and_step {
        (_, 0) => 0,
        (span, step) if span != 0 && (span > 0) != (step > 0) => 0,
        (span, step) => span / step + 1,
    }
}

/// The series node for `args` (no rows if one is NULL).
pub(super) fn plan(args: &[ast::Expression]) -> Result<Node> {
    let values =
        args.iter().map(|a| evaluate_constant(a, "generate_series")).collect::<Result<Vec<_>>>()?;
    let invalid = |why: &str| Error::Invalid(format!("generate_series(): {why}"));
    // A NULL bound or step makes no values, as in PostgreSQL.
    if (2..=3).contains(&values.len()) && values.iter().any(Value::is_null) {
        return Ok(Node::Values { rows: Vec::new() });
    }
    let (start, stop, step) = match values.as_slice() {
        [start, stop] => (start.clone(), stop.clone(), Value::Integer(1)),
        [start, stop, step] => (start.clone(), stop.clone(), step.clone()),
        _ => return Err(invalid("takes a start, a stop and optionally a step")),
    };
    let (start, stop) = match (start, stop) {
        (Value::Timestamp(a), b) => {
            (Value::Timestamp(a), b.cast(crate::sql::types::DataType::Timestamp)?)
        }
        (a @ Value::String(_), b) => (
            a.cast(crate::sql::types::DataType::Timestamp)?,
            b.cast(crate::sql::types::DataType::Timestamp)?,
        ),
        (a, b) => (a, b),
    };
    let step = match (&start, step) {
        (Value::Timestamp(_), Value::String(s)) => Value::Interval(Interval::parse(&s)?),
        (_, step) => step,
    };
    if length(&start, &stop, &step) > MAX_SERIES_VALUES {
        return Err(Error::OutOfRange(format!(
            "generate_series(): more than {MAX_SERIES_VALUES} values"
        )));
    }
    match (&start, &stop, &step) {
        (Value::Integer(_), Value::Integer(_), Value::Integer(0)) => {
            Err(invalid("the step cannot be 0"))
        }
        (Value::Integer(_), Value::Integer(_), Value::Integer(_)) => {
            Ok(Node::Series { start, stop, step })
        }
        (Value::Timestamp(_), Value::Timestamp(_), Value::Interval(i)) => {
            if i.length() == 0 || (i.months != 0 && (i.days != 0 || i.micros != 0)) {
                return Err(invalid("the step must be a nonzero interval of months or of time"));
            }
            Ok(Node::Series { start, stop, step })
        }
        (Value::Timestamp(_), _, _) => {
            Err(invalid("timestamps need a stop TIMESTAMP and an INTERVAL step"))
        }
        _ => Err(invalid("start and stop must be INTEGERs or TIMESTAMPs")),
    }
}
