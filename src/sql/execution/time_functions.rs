//! Time functions: `date_trunc`, `date_part` (and `EXTRACT`), `strftime`, `time_bucket` and
//! `to_timestamp`. Integer arithmetic on UTC microseconds only, so every replica computes the
//! same value. A string where a timestamp is expected is read as ISO 8601.

use crate::sql::error::{Error, Result};
use crate::sql::types::time::{self, Civil, DAY, HOUR, MINUTE, SECOND};
use crate::sql::types::{Interval, Value};

/// The origin of `time_bucket` buckets when none is given: Monday 2000-01-03 (TimescaleDB's),
/// so week buckets start on Mondays; month buckets start at 2000-01-01.
const BUCKET_ORIGIN: i64 = 946_857_600 * SECOND;
const MONTH_BUCKET_ORIGIN: i64 = 946_684_800 * SECOND;

/// An argument as a timestamp (`None` for NULL).
fn timestamp(function: &str, value: Value) -> Result<Option<i64>> {
    match value {
        Value::Null => Ok(None),
        Value::Timestamp(t) => Ok(Some(t)),
        Value::String(s) => time::parse(&s).map(Some),
        other => Err(Error::TypeMismatch(format!(
            "{function}() expects a TIMESTAMP, got {}",
            other.to_sql()
        ))),
    }
}

/// An argument as text (`None` for NULL).
fn text(function: &str, value: Value) -> Result<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.to_ascii_lowercase())),
        other => Err(Error::TypeMismatch(format!(
            "{function}() expects a STRING, got {}",
            other.to_sql()
        ))),
    }
}

/// `date_trunc(unit, ts)`: the timestamp truncated to the start of its microsecond,
/// millisecond, second, minute, hour, day, week (Monday), month, quarter, year, decade,
/// century or millennium.
pub(super) fn date_trunc(unit: Value, ts: Value) -> Result<Value> {
    let (Some(unit), Some(ts)) = (text("date_trunc", unit)?, timestamp("date_trunc", ts)?) else {
        return Ok(Value::Null);
    };
    let floor = |step: i64| ts - ts.rem_euclid(step);
    let civil = Civil::of(ts);
    let start_of = |year: i64, month: u32| Civil { year, month, day: 1, time: 0 }.timestamp();
    let years = |n: i64| start_of(civil.year - (civil.year - 1).rem_euclid(n), 1);
    Ok(Value::Timestamp(match unit.trim_end_matches('s') {
        "microsecond" => ts,
        "millisecond" => floor(1_000),
        "second" => floor(SECOND),
        "minute" => floor(MINUTE),
        "hour" => floor(HOUR),
        "day" => floor(DAY),
        // 1970-01-01 was a Thursday: weeks from Monday 1969-12-29.
        "week" => time::checked(ts - (ts + 3 * DAY).rem_euclid(7 * DAY))?,
        "month" => start_of(civil.year, civil.month)?,
        "quarter" => start_of(civil.year, (civil.month - 1) / 3 * 3 + 1)?,
        "year" => start_of(civil.year, 1)?,
        "decade" => start_of((civil.year - civil.year.rem_euclid(10)).max(1), 1)?,
        "century" => years(100)?,
        "millennium" => years(1000)?,
        _ => return Err(unknown_unit("date_trunc", &unit)),
    }))
}

fn unknown_unit(function: &str, unit: &str) -> Error {
    Error::Invalid(format!("{function}(): unknown unit '{unit}'"))
}

/// `date_part(field, ts)` and `EXTRACT(field FROM ts)`: a field of a timestamp (year,
/// quarter, month, week (ISO), day, hour, minute, dow (Sunday 0), isodow (Monday 1), doy,
/// microsecond(s), millisecond(s) as integers; second with its fraction and epoch as floats),
/// or of an interval (epoch, day, hour, minute, second).
pub(super) fn date_part(field: Value, value: Value) -> Result<Value> {
    let Some(field) = text("date_part", field)? else { return Ok(Value::Null) };
    if let Value::Interval(interval) = value {
        return interval_part(&field, &interval);
    }
    let Some(ts) = timestamp("date_part", value)? else { return Ok(Value::Null) };
    let civil = Civil::of(ts);
    let (hour, minute, second, micros) = civil.clock();
    let day_number = ts.div_euclid(DAY);
    let day_of_year = day_number - time::days_from_civil(civil.year, 1, 1) + 1;
    let int = Value::Integer;
    Ok(match field.as_str() {
        "year" | "years" => int(civil.year),
        "quarter" => int(i64::from((civil.month - 1) / 3 + 1)),
        "month" | "months" => int(i64::from(civil.month)),
        "week" | "weeks" => int(iso_week(day_number)),
        "day" | "days" => int(i64::from(civil.day)),
        "hour" | "hours" => int(hour),
        "minute" | "minutes" => int(minute),
        "second" | "seconds" => Value::Float(second as f64 + micros as f64 / SECOND as f64),
        "millisecond" | "milliseconds" => int(second * 1_000 + micros / 1_000),
        "microsecond" | "microseconds" => int(second * SECOND + micros),
        "dow" => int((day_number + 4).rem_euclid(7)),
        "isodow" => int((day_number + 3).rem_euclid(7) + 1),
        "doy" => int(day_of_year),
        "epoch" => Value::Float(ts as f64 / SECOND as f64),
        _ => return Err(unknown_unit("date_part", &field)),
    })
}

/// A field of an interval.
fn interval_part(field: &str, interval: &Interval) -> Result<Value> {
    let micros = interval.micros;
    Ok(match field {
        "epoch" => Value::Float(interval.length() as f64 / SECOND as f64),
        "year" | "years" => Value::Integer(i64::from(interval.months / 12)),
        "month" | "months" => Value::Integer(i64::from(interval.months % 12)),
        "day" | "days" => Value::Integer(i64::from(interval.days)),
        "hour" | "hours" => Value::Integer(micros / HOUR),
        "minute" | "minutes" => Value::Integer(micros % HOUR / MINUTE),
        "second" | "seconds" => Value::Float((micros % MINUTE) as f64 / SECOND as f64),
        _ => return Err(unknown_unit("date_part", field)),
    })
}

/// The ISO 8601 week number of the day `day_number` days after 1970-01-01: weeks start on
/// Monday and week 1 holds the year's first Thursday.
fn iso_week(day_number: i64) -> i64 {
    let weekday = (day_number + 3).rem_euclid(7); // Monday 0
    let thursday = day_number - weekday + 3;
    let (year, _, _) = time::civil_from_days(thursday);
    (thursday - time::days_from_civil(year, 1, 1)) / 7 + 1
}

/// `strftime(format, ts)`, SQLite's directives: `%Y` year, `%m` month, `%d` day, `%H` hour,
/// `%M` minute, `%S` second, `%f` seconds with milliseconds (`SS.SSS`), `%j` day of year,
/// `%w` weekday (Sunday 0), `%u` weekday (Monday 1), `%s` Unix seconds, `%%`.
pub(super) fn strftime(format: Value, ts: Value) -> Result<Value> {
    let format = match format {
        Value::Null => return Ok(Value::Null),
        Value::String(s) => s,
        other => {
            return Err(Error::TypeMismatch(format!(
                "strftime() format must be a STRING, got {}",
                other.to_sql()
            )));
        }
    };
    let Some(ts) = timestamp("strftime", ts)? else { return Ok(Value::Null) };
    let civil = Civil::of(ts);
    let (hour, minute, second, micros) = civil.clock();
    let day_number = ts.div_euclid(DAY);
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        use std::fmt::Write;
        let _ = match chars.next() {
            Some('Y') => write!(out, "{:04}", civil.year),
            Some('m') => write!(out, "{:02}", civil.month),
            Some('d') => write!(out, "{:02}", civil.day),
            Some('H') => write!(out, "{hour:02}"),
            Some('M') => write!(out, "{minute:02}"),
            Some('S') => write!(out, "{second:02}"),
            Some('f') => write!(out, "{second:02}.{:03}", micros / 1_000),
            Some('j') => {
                let first = time::days_from_civil(civil.year, 1, 1);
                write!(out, "{:03}", day_number - first + 1)
            }
            Some('w') => write!(out, "{}", (day_number + 4).rem_euclid(7)),
            Some('u') => write!(out, "{}", (day_number + 3).rem_euclid(7) + 1),
            Some('s') => write!(out, "{}", ts.div_euclid(SECOND)),
            Some('%') => write!(out, "%"),
            Some(other) => {
                return Err(Error::Invalid(format!("strftime(): unknown directive %{other}")));
            }
            None => return Err(Error::Invalid("strftime(): the format ends in %".into())),
        };
    }
    Ok(Value::String(out))
}

/// `time_bucket(width, ts [, origin])`: the start of the bucket of `width` holding `ts`.
/// Buckets are counted from `origin` (by default Monday 2000-01-03, or 2000-01-01 for widths
/// in months). A width is either months or a fixed time, not both.
pub(super) fn time_bucket(width: Value, ts: Value, origin: Option<Value>) -> Result<Value> {
    let width = match width {
        Value::Null => return Ok(Value::Null),
        Value::Interval(i) => i,
        Value::String(s) => Interval::parse(&s)?,
        other => {
            return Err(Error::TypeMismatch(format!(
                "time_bucket() width must be an INTERVAL, got {}",
                other.to_sql()
            )));
        }
    };
    let Some(ts) = timestamp("time_bucket", ts)? else { return Ok(Value::Null) };
    let origin = match origin {
        None => None,
        Some(origin) => match timestamp("time_bucket", origin)? {
            Some(origin) => Some(origin),
            None => return Ok(Value::Null),
        },
    };
    if width.months != 0 {
        if width.days != 0 || width.micros != 0 {
            return Err(Error::Invalid(
                "time_bucket(): a width in months cannot also have days or time".into(),
            ));
        }
        if width.months < 0 {
            return Err(Error::Invalid("time_bucket(): the width must be positive".into()));
        }
        let origin = origin.unwrap_or(MONTH_BUCKET_ORIGIN);
        let (at, from) = (Civil::of(ts), Civil::of(origin));
        let months = (at.year - from.year) * 12 + i64::from(at.month) - i64::from(from.month);
        let step = i64::from(width.months);
        let mut start = time::add_months(origin, months.div_euclid(step) * step)?;
        if start > ts {
            start = time::add_months(start, -step)?;
        }
        return Ok(Value::Timestamp(start));
    }
    let step = width
        .fixed_micros()
        .filter(|step| *step > 0)
        .ok_or_else(|| Error::Invalid("time_bucket(): the width must be positive".into()))?;
    let origin = origin.unwrap_or(BUCKET_ORIGIN);
    let offset = i128::from(ts) - i128::from(origin);
    let start = i128::from(origin) + offset.div_euclid(i128::from(step)) * i128::from(step);
    let start = i64::try_from(start).map_err(|_| time::out_of_range())?;
    Ok(Value::Timestamp(time::checked(start)?))
}

/// `to_timestamp(seconds)`: the timestamp `seconds` (a number, fractions kept to the
/// microsecond) after 1970-01-01 00:00:00 UTC.
pub(super) fn to_timestamp(seconds: Value) -> Result<Value> {
    let micros = match seconds {
        Value::Null => return Ok(Value::Null),
        Value::Integer(i) => i.checked_mul(SECOND).ok_or_else(time::out_of_range)?,
        Value::Float(f) if f.is_finite() && f.abs() < 9.2e12 => (f * SECOND as f64).round() as i64,
        Value::Float(_) => return Err(time::out_of_range()),
        other => {
            return Err(Error::TypeMismatch(format!(
                "to_timestamp() expects a number of seconds, got {}",
                other.to_sql()
            )));
        }
    };
    Ok(Value::Timestamp(time::checked(micros)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Value {
        Value::Timestamp(time::parse(text).unwrap())
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn truncates_to_each_unit() {
        let t = ts("2024-05-15 13:47:29.123456");
        let trunc = |unit: &str| date_trunc(s(unit), t.clone()).unwrap();
        assert_eq!(trunc("second"), ts("2024-05-15 13:47:29"));
        assert_eq!(trunc("minute"), ts("2024-05-15 13:47"));
        assert_eq!(trunc("hour"), ts("2024-05-15 13:00"));
        assert_eq!(trunc("day"), ts("2024-05-15"));
        assert_eq!(trunc("week"), ts("2024-05-13")); // a Monday
        assert_eq!(trunc("month"), ts("2024-05-01"));
        assert_eq!(trunc("quarter"), ts("2024-04-01"));
        assert_eq!(trunc("year"), ts("2024-01-01"));
        assert_eq!(trunc("decade"), ts("2020-01-01"));
        assert_eq!(trunc("century"), ts("2001-01-01"));
        assert!(date_trunc(s("fortnight"), t).is_err());
        assert_eq!(date_trunc(s("day"), Value::Null).unwrap(), Value::Null);
    }

    #[test]
    fn extracts_fields() {
        let t = ts("2024-12-30 13:47:29.5"); // a Monday in ISO week 1 of 2025
        let part = |field: &str| date_part(s(field), t.clone()).unwrap();
        assert_eq!(part("year"), Value::Integer(2024));
        assert_eq!(part("quarter"), Value::Integer(4));
        assert_eq!(part("week"), Value::Integer(1));
        assert_eq!(part("dow"), Value::Integer(1));
        assert_eq!(part("isodow"), Value::Integer(1));
        assert_eq!(part("doy"), Value::Integer(365));
        assert_eq!(part("second"), Value::Float(29.5));
        assert_eq!(date_part(s("epoch"), ts("1970-01-02")).unwrap(), Value::Float(86_400.0));
        let interval = Value::Interval(Interval::parse("1 day 02:00:00").unwrap());
        assert_eq!(date_part(s("epoch"), interval.clone()).unwrap(), Value::Float(93_600.0));
        assert_eq!(date_part(s("hour"), interval).unwrap(), Value::Integer(2));
    }

    #[test]
    fn formats_like_sqlite() {
        let out = strftime(s("%Y-%m-%d %H:%M:%f %j %w %u %s %%"), ts("2024-03-03 04:05:06.789"));
        assert_eq!(out.unwrap(), s("2024-03-03 04:05:06.789 063 0 7 1709438706 %"));
        assert!(strftime(s("%Q"), ts("2024-01-01")).is_err());
    }

    #[test]
    fn buckets_from_the_origin() {
        let bucket = |width: &str, t: &str| time_bucket(s(width), ts(t), None).unwrap();
        assert_eq!(bucket("1 minute", "2024-05-15 13:47:29"), ts("2024-05-15 13:47"));
        assert_eq!(bucket("15 minutes", "2024-05-15 13:47:29"), ts("2024-05-15 13:45"));
        assert_eq!(bucket("1 day", "2024-05-15 13:47:29"), ts("2024-05-15"));
        assert_eq!(bucket("7 days", "2024-05-15 13:47:29"), ts("2024-05-13"));
        assert_eq!(bucket("3 months", "2024-05-15"), ts("2024-04-01"));
        assert_eq!(bucket("1 hour", "1969-12-31 23:30"), ts("1969-12-31 23:00"));
        let shifted =
            time_bucket(s("1 hour"), ts("2024-05-15 13:47"), Some(ts("2000-01-01 00:30")));
        assert_eq!(shifted.unwrap(), ts("2024-05-15 13:30"));
        assert!(time_bucket(s("0 minutes"), ts("2024-01-01"), None).is_err());
        assert!(time_bucket(s("1 month 1 day"), ts("2024-01-01"), None).is_err());
    }
}
