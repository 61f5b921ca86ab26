//! Scalar functions: what each computes from its arguments, with SQL's NULL handling (a NULL
//! argument gives NULL unless the function says otherwise). Text functions count characters,
//! not bytes, and a result longer than [`MAX_TEXT_BYTES`] is an error, not an allocation.

use crate::sql::error::{Error, Result};
use crate::sql::planner::{Expression, ScalarFunction};
use crate::sql::types::Value;
use std::cmp::Ordering;

pub use crate::sql::types::MAX_TEXT_BYTES;

/// Calls a scalar function. Arity was checked by the planner.
pub(super) fn call(function: ScalarFunction, args: &[Expression], row: &[Value]) -> Result<Value> {
    let arg =
        |i: usize| -> Result<Value> { args.get(i).map_or(Ok(Value::Null), |a| a.evaluate(row)) };
    let string_arg = |name: &str| -> Result<Option<String>> {
        match arg(0)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(Error::TypeMismatch(format!(
                "{name}() expects a STRING, got {}",
                other.to_sql()
            ))),
        }
    };
    Ok(match function {
        ScalarFunction::Abs => match arg(0)? {
            Value::Integer(i) => Value::Integer(
                i.checked_abs().ok_or_else(|| Error::OutOfRange("integer out of range".into()))?,
            ),
            Value::Float(f) => Value::Float(f.abs()),
            Value::Null => Value::Null,
            other => {
                return Err(Error::TypeMismatch(format!(
                    "abs() expects a number, got {}",
                    other.to_sql()
                )));
            }
        },
        ScalarFunction::Coalesce => {
            for a in args {
                let value = a.evaluate(row)?;
                if !value.is_null() {
                    return Ok(value);
                }
            }
            Value::Null
        }
        ScalarFunction::NullIf => {
            let (a, b) = (arg(0)?, arg(1)?);
            if a.sql_eq(&b)?.is_true()? { Value::Null } else { a }
        }
        ScalarFunction::Length => match string_arg("length")? {
            Some(s) => Value::Integer(s.chars().count() as i64),
            None => Value::Null,
        },
        ScalarFunction::Upper => {
            string_arg("upper")?.map_or(Value::Null, |s| Value::String(s.to_uppercase()))
        }
        ScalarFunction::Lower => {
            string_arg("lower")?.map_or(Value::Null, |s| Value::String(s.to_lowercase()))
        }
        ScalarFunction::Round => {
            let digits = match arg(1)? {
                Value::Null if args.len() > 1 => return Ok(Value::Null),
                Value::Null => 0,
                Value::Integer(d) => d.clamp(-20, 20) as i32,
                other => {
                    return Err(Error::TypeMismatch(format!(
                        "round() digits must be an INTEGER, got {}",
                        other.to_sql()
                    )));
                }
            };
            match arg(0)? {
                Value::Null => Value::Null,
                Value::Integer(i) if digits >= 0 => Value::Integer(i),
                Value::Integer(i) => {
                    let scale = 10f64.powi(-digits);
                    Value::Float(((i as f64) / scale).round() * scale)
                        .cast(crate::sql::types::DataType::Integer)?
                }
                // Half away from zero, as SQLite and PostgreSQL's numeric round do.
                Value::Float(f) => {
                    let scale = 10f64.powi(digits);
                    let rounded = (f * scale).round() / scale;
                    Value::Float(if rounded.is_finite() { rounded } else { f })
                }
                other => {
                    return Err(Error::TypeMismatch(format!(
                        "round() expects a number, got {}",
                        other.to_sql()
                    )));
                }
            }
        }
        ScalarFunction::Substr => {
            let Some(text) = text_arg(arg(0)?) else { return Ok(Value::Null) };
            let start = match integer_arg(arg(1)?, "substr")? {
                Some(start) => start,
                None => return Ok(Value::Null),
            };
            let length = match args.len() {
                3 => match integer_arg(arg(2)?, "substr")? {
                    Some(length) => Some(length),
                    None => return Ok(Value::Null),
                },
                _ => None,
            };
            Value::String(substr(&text, start, length))
        }
        ScalarFunction::Instr => {
            let (Some(text), Some(sub)) = (text_arg(arg(0)?), text_arg(arg(1)?)) else {
                return Ok(Value::Null);
            };
            match text.find(&sub) {
                Some(at) => Value::Integer(text[..at].chars().count() as i64 + 1),
                None => Value::Integer(0),
            }
        }
        ScalarFunction::Trim | ScalarFunction::LTrim | ScalarFunction::RTrim => {
            let Some(text) = text_arg(arg(0)?) else { return Ok(Value::Null) };
            let chars: Vec<char> = match args.len() {
                2 => match text_arg(arg(1)?) {
                    Some(chars) => chars.chars().collect(),
                    None => return Ok(Value::Null),
                },
                _ => vec![' '],
            };
            let trimmed = match function {
                ScalarFunction::LTrim => text.trim_start_matches(chars.as_slice()),
                ScalarFunction::RTrim => text.trim_end_matches(chars.as_slice()),
                _ => text.trim_matches(chars.as_slice()),
            };
            Value::String(trimmed.to_string())
        }
        ScalarFunction::Replace => {
            let (Some(text), Some(from), Some(to)) =
                (text_arg(arg(0)?), text_arg(arg(1)?), text_arg(arg(2)?))
            else {
                return Ok(Value::Null);
            };
            if from.is_empty() {
                return Ok(Value::String(text));
            }
            // The result's size is known before it is built.
            let matches = text.matches(from.as_str()).count();
            let size = (text.len() - matches * from.len())
                .saturating_add(matches.saturating_mul(to.len()));
            if size > MAX_TEXT_BYTES {
                return Err(too_long("replace"));
            }
            Value::String(text.replace(&from, &to))
        }
        ScalarFunction::Printf => {
            let Some(format) = text_arg(arg(0)?) else { return Ok(Value::Null) };
            let values = args[1..].iter().map(|a| a.evaluate(row)).collect::<Result<Vec<_>>>()?;
            Value::String(super::printf::format(&format, &values, MAX_TEXT_BYTES)?)
        }
        ScalarFunction::TypeOf => Value::String(
            match arg(0)? {
                Value::Null => "null",
                Value::Boolean(_) => "boolean",
                Value::Integer(_) => "integer",
                Value::Float(_) => "real",
                Value::String(_) => "text",
                Value::Timestamp(_) => "timestamp",
                Value::Interval(_) => "interval",
            }
            .to_string(),
        ),
        ScalarFunction::DateTrunc => super::time_functions::date_trunc(arg(0)?, arg(1)?)?,
        ScalarFunction::DatePart => super::time_functions::date_part(arg(0)?, arg(1)?)?,
        ScalarFunction::Strftime => super::time_functions::strftime(arg(0)?, arg(1)?)?,
        ScalarFunction::TimeBucket => {
            let origin = if args.len() > 2 { Some(arg(2)?) } else { None };
            super::time_functions::time_bucket(arg(0)?, arg(1)?, origin)?
        }
        ScalarFunction::ToTimestamp => super::time_functions::to_timestamp(arg(0)?)?,
        ScalarFunction::Least | ScalarFunction::Greatest => {
            let mut best = Value::Null;
            for a in args {
                let value = a.evaluate(row)?;
                if value.is_null() {
                    return Ok(Value::Null);
                }
                let better = match best.compare(&value)? {
                    None => true,
                    Some(ordering) => {
                        (function == ScalarFunction::Least) == (ordering == Ordering::Greater)
                    }
                };
                if better {
                    best = value;
                }
            }
            best
        }
    })
}

/// A text argument: strings as they are, numbers and booleans as their text (as SQLite
/// does), NULL as `None`.
fn text_arg(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// An integer argument (a float with no fraction counts), NULL as `None`.
fn integer_arg(value: Value, name: &str) -> Result<Option<i64>> {
    match value {
        Value::Null => Ok(None),
        Value::Integer(i) => Ok(Some(i)),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(Some(f as i64)),
        other => {
            Err(Error::TypeMismatch(format!("{name}() expects an INTEGER, got {}", other.to_sql())))
        }
    }
}

fn too_long(name: &str) -> Error {
    Error::OutOfRange(format!("{name}() would build a text longer than {MAX_TEXT_BYTES} bytes"))
}

/// SQLite's SUBSTR on characters: `start` counts from 1 (0 is just before the first character,
/// a negative start counts from the end); a negative `length` takes the characters before
/// `start`; no length takes the rest.
fn substr(text: &str, start: i64, length: Option<i64>) -> String {
    let count = text.chars().count() as i64;
    let (mut first, mut take) = (
        start.max(i64::MIN / 2),
        length.map_or(i64::MAX / 2, |l| l.saturating_abs().min(i64::MAX / 2)),
    );
    let backwards = length.is_some_and(|l| l < 0);
    if first < 0 {
        first += count;
        if first < 0 {
            take = (take + first).max(0);
            first = 0;
        }
    } else if first > 0 {
        first -= 1;
    } else if take > 0 {
        take -= 1; // start 0 is just before the first character
    }
    if backwards {
        first -= take;
        if first < 0 {
            take = (take + first).max(0);
            first = 0;
        }
    }
    text.chars().skip(first as usize).take(take.max(0) as usize).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substr_follows_sqlite() {
        let cases: &[(i64, Option<i64>, &str)] = &[
            (1, Some(3), "héé"),
            (2, None, "éé lo"),
            (0, Some(2), "h"),
            (-2, None, "lo"),
            (-2, Some(1), "l"),
            (4, Some(-2), "éé"),
            (2, Some(-5), "h"),
            (-10, Some(8), "héé "),
            (0, Some(-3), ""),
            (0, None, "héé lo"),
            (10, Some(2), ""),
            (3, Some(0), ""),
        ];
        for (start, length, expected) in cases {
            assert_eq!(substr("héé lo", *start, *length), *expected, "{start} {length:?}");
        }
    }
}
