//! INTERVAL values: a span of months, days and microseconds, kept apart as PostgreSQL keeps
//! them, because a month is not a fixed number of days (`'1 month'` after January 31 is
//! February's last day). Days are always 24 hours: timestamps are UTC.
//!
//! Intervals compare by their length with a month counted as 30 days (PostgreSQL's rule), ties
//! broken by the parts, so the order is total and `'1 month'` sorts next to `'30 days'`.

use super::time::{self, DAY, HOUR, MINUTE, SECOND, Scanner};
use super::{ArithmeticOp, Value};
use crate::sql::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// A span of time (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Interval {
    /// Calendar months (a year is 12).
    pub months: i32,
    /// Days (a week is 7).
    pub days: i32,
    /// Microseconds.
    pub micros: i64,
}

fn overflow() -> Error {
    Error::OutOfRange("interval out of range".into())
}

impl Interval {
    /// An interval of `micros` microseconds, as days and time (a `timestamp - timestamp`).
    pub fn between(micros: i64) -> Result<Interval> {
        let days = i32::try_from(micros / DAY).map_err(|_| overflow())?;
        Ok(Interval { months: 0, days, micros: micros % DAY })
    }

    /// The length with a month as 30 days, for ordering.
    pub fn length(&self) -> i128 {
        (i128::from(self.months) * 30 + i128::from(self.days)) * i128::from(DAY)
            + i128::from(self.micros)
    }

    /// Whether the interval has no months: a fixed number of microseconds.
    pub fn fixed_micros(&self) -> Option<i64> {
        match self.months {
            0 => i64::from(self.days).checked_mul(DAY)?.checked_add(self.micros),
            _ => None,
        }
    }

    /// The sum of two intervals, part by part.
    pub fn checked_add(&self, other: &Interval) -> Result<Interval> {
        Ok(Interval {
            months: self.months.checked_add(other.months).ok_or_else(overflow)?,
            days: self.days.checked_add(other.days).ok_or_else(overflow)?,
            micros: self.micros.checked_add(other.micros).ok_or_else(overflow)?,
        })
    }

    /// The interval negated.
    pub fn checked_neg(&self) -> Result<Interval> {
        Interval::default().checked_sub(self)
    }

    /// The difference of two intervals, part by part.
    pub fn checked_sub(&self, other: &Interval) -> Result<Interval> {
        Ok(Interval {
            months: self.months.checked_sub(other.months).ok_or_else(overflow)?,
            days: self.days.checked_sub(other.days).ok_or_else(overflow)?,
            micros: self.micros.checked_sub(other.micros).ok_or_else(overflow)?,
        })
    }

    /// The interval scaled by `factor`; a fraction of a month carries into days (30 to a
    /// month) and a fraction of a day into microseconds, as in PostgreSQL.
    pub fn scale(&self, factor: f64) -> Result<Interval> {
        if !factor.is_finite() {
            return Err(overflow());
        }
        let months = f64::from(self.months) * factor;
        let days = f64::from(self.days) * factor + months.fract() * 30.0;
        let micros = self.micros as f64 * factor + days.fract() * DAY as f64;
        let fits = |f: f64, limit: f64| f.abs() < limit;
        if !fits(months, 2.1e9) || !fits(days, 2.1e9) || !fits(micros, 9.2e18) {
            return Err(overflow());
        }
        Ok(Interval {
            months: months.trunc() as i32,
            days: days.trunc() as i32,
            micros: micros.round() as i64,
        })
    }

    /// `timestamp + interval`: months first (the day clamped to the month), then days and
    /// time, as PostgreSQL adds them.
    pub fn add_to(&self, timestamp: i64) -> Result<i64> {
        let moved = time::add_months(timestamp, i64::from(self.months))?;
        let rest = i64::from(self.days)
            .checked_mul(DAY)
            .and_then(|d| d.checked_add(self.micros))
            .and_then(|d| moved.checked_add(d))
            .ok_or_else(time::out_of_range)?;
        time::checked(rest)
    }

    /// Parses an interval: quantities with units (`'5 minutes'`, `'1 year 2 months'`,
    /// `'1.5 hours'`, `'-3 days'`, `'90s'`), optionally with a clock part (`'1 day 02:30:00'`).
    /// Years and months must be whole; smaller units may have fractions.
    pub fn parse(text: &str) -> Result<Interval> {
        let invalid = |why: &str| {
            Error::TypeMismatch(format!(
                "invalid INTERVAL '{text}': {why} (expected like '5 minutes' or '1 day 02:00:00')"
            ))
        };
        let mut total = Interval::default();
        let mut tokens = text.split_whitespace().peekable();
        let mut any = false;
        while let Some(token) = tokens.next() {
            any = true;
            if token.contains(':') {
                total =
                    total.checked_add(&parse_clock(token).ok_or_else(|| invalid("bad time"))?)?;
                continue;
            }
            let split = token
                .char_indices()
                .find(|(i, c)| c.is_ascii_alphabetic() && *i > 0)
                .map_or(token.len(), |(i, _)| i);
            let (number, unit) = token.split_at(split);
            let number: f64 = number.parse().map_err(|_| invalid("a quantity is not a number"))?;
            let unit = match unit {
                "" => tokens.next().ok_or_else(|| invalid("a quantity has no unit"))?,
                unit => unit,
            };
            total = total.checked_add(&quantity(number, unit).map_err(|why| invalid(&why))?)?;
        }
        if !any {
            return Err(invalid("it is empty"));
        }
        Ok(total)
    }
}

/// `number unit` as an interval.
fn quantity(number: f64, unit: &str) -> std::result::Result<Interval, String> {
    let unit = unit.to_ascii_lowercase();
    let fixed = |scale: i64| -> std::result::Result<Interval, String> {
        let micros = number * scale as f64;
        if micros.abs() >= 9.2e18 {
            return Err("too long".into());
        }
        Interval::between(micros.round() as i64).map_err(|e| e.to_string())
    };
    let whole = |months: i64| -> std::result::Result<Interval, String> {
        if number.fract() != 0.0 {
            return Err(format!("'{unit}' takes a whole number"));
        }
        let months = (number as i64).checked_mul(months).ok_or("too long")?;
        Ok(Interval {
            months: i32::try_from(months).map_err(|_| "too long")?,
            ..Default::default()
        })
    };
    match unit.as_str() {
        "microsecond" | "microseconds" | "us" => fixed(1),
        "millisecond" | "milliseconds" | "ms" => fixed(1_000),
        "second" | "seconds" | "sec" | "secs" | "s" => fixed(SECOND),
        "minute" | "minutes" | "min" | "mins" | "m" => fixed(MINUTE),
        "hour" | "hours" | "hr" | "hrs" | "h" => fixed(HOUR),
        "day" | "days" | "d" => {
            let days = number.trunc();
            if days.abs() >= 2.1e9 {
                return Err("too long".into());
            }
            let rest = fixed(DAY).map(|i| i.micros)?;
            Ok(Interval { months: 0, days: days as i32, micros: rest })
        }
        "week" | "weeks" | "w" => Interval::default()
            .checked_add(&quantity(number * 7.0, "days")?)
            .map_err(|e| e.to_string()),
        "month" | "months" | "mon" | "mons" => whole(1),
        "year" | "years" | "y" | "yr" | "yrs" => whole(12),
        other => Err(format!("unknown unit '{other}'")),
    }
}

/// `[-]HH:MM[:SS[.ffffff]]` as an interval of time.
fn parse_clock(token: &str) -> Option<Interval> {
    let (negative, rest) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let mut p = Scanner { bytes: rest.as_bytes(), at: 0 };
    let hours = p.digits(1, 9)?;
    p.eat(b':').then_some(())?;
    let minutes = p.digits(2, 2)?;
    let (mut seconds, mut fraction) = (0, 0);
    if p.eat(b':') {
        seconds = p.digits(2, 2)?;
        if p.eat(b'.') {
            fraction = p.fraction()?;
        }
    }
    if p.peek().is_some() || minutes > 59 || seconds > 59 {
        return None;
    }
    let micros = hours * HOUR + minutes * MINUTE + seconds * SECOND + fraction;
    Some(Interval { micros: if negative { -micros } else { micros }, ..Default::default() })
}

impl Ord for Interval {
    fn cmp(&self, other: &Self) -> Ordering {
        self.length().cmp(&other.length()).then_with(|| {
            (self.months, self.days, self.micros).cmp(&(other.months, other.days, other.micros))
        })
    }
}

impl PartialOrd for Interval {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Interval {
    /// PostgreSQL's form: `1 year 2 mons 3 days 04:05:06.5`; `00:00:00` when zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let (years, months) = (self.months / 12, self.months % 12);
        let plural = |n: i32, one: &str, many: &str| {
            format!("{n} {}", if n.abs() == 1 { one } else { many })
        };
        if years != 0 {
            parts.push(plural(years, "year", "years"));
        }
        if months != 0 {
            parts.push(plural(months, "mon", "mons"));
        }
        if self.days != 0 {
            parts.push(plural(self.days, "day", "days"));
        }
        if self.micros != 0 || parts.is_empty() {
            let sign = if self.micros < 0 { "-" } else { "" };
            let m = self.micros.unsigned_abs() as i64;
            let mut clock = format!(
                "{sign}{:02}:{:02}:{:02}",
                m / HOUR,
                m % HOUR / MINUTE,
                m % MINUTE / SECOND
            );
            time::push_fraction(&mut clock, m % SECOND);
            parts.push(clock);
        }
        f.write_str(&parts.join(" "))
    }
}

/// Arithmetic with a timestamp or an interval on either side (the caller handled NULL): a
/// timestamp moves by an interval; two timestamps differ by an interval; intervals add and
/// scale by numbers. A string beside a timestamp or an interval is read as an interval, or
/// failing that as a timestamp (`ts - '2024-01-01'`).
pub(super) fn arithmetic(a: &Value, op: ArithmeticOp, b: &Value) -> Result<Value> {
    use ArithmeticOp::*;
    use Value::{Float, Integer, Timestamp};
    let read = |v: &Value| -> Value {
        match v {
            Value::String(s) => Interval::parse(s)
                .map(Value::Interval)
                .unwrap_or_else(|_| time::parse(s).map(Timestamp).unwrap_or_else(|_| v.clone())),
            _ => v.clone(),
        }
    };
    let number = |v: &Value| match v {
        Integer(i) => Some(*i as f64),
        Float(f) => Some(*f),
        _ => None,
    };
    Ok(match (read(a), op, read(b)) {
        (Timestamp(t), Add, Value::Interval(i)) | (Value::Interval(i), Add, Timestamp(t)) => {
            Timestamp(i.add_to(t)?)
        }
        (Timestamp(t), Subtract, Value::Interval(i)) => Timestamp(i.checked_neg()?.add_to(t)?),
        (Timestamp(x), Subtract, Timestamp(y)) => {
            Value::Interval(Interval::between(x.checked_sub(y).ok_or_else(overflow)?)?)
        }
        (Value::Interval(x), Add, Value::Interval(y)) => Value::Interval(x.checked_add(&y)?),
        (Value::Interval(x), Subtract, Value::Interval(y)) => Value::Interval(x.checked_sub(&y)?),
        (Value::Interval(i), Multiply, n) | (n, Multiply, Value::Interval(i))
            if number(&n).is_some() =>
        {
            Value::Interval(i.scale(number(&n).unwrap_or(1.0))?)
        }
        (Value::Interval(i), Divide, n) if number(&n).is_some() => match number(&n) {
            Some(d) if d != 0.0 => Value::Interval(i.scale(1.0 / d)?),
            _ => return Err(Error::DivisionByZero),
        },
        _ => {
            return Err(Error::TypeMismatch(format!(
                "cannot apply {op} to {} and {}",
                a.type_name(),
                b.type_name()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(months: i32, days: i32, micros: i64) -> Interval {
        Interval { months, days, micros }
    }

    #[test]
    fn parses_units_fractions_and_clocks() {
        let p = |s: &str| Interval::parse(s).unwrap();
        assert_eq!(p("5 minutes"), iv(0, 0, 5 * MINUTE));
        assert_eq!(p("7 days"), iv(0, 7, 0));
        assert_eq!(p("1 year 2 months"), iv(14, 0, 0));
        assert_eq!(p("1.5 hours"), iv(0, 0, 90 * MINUTE));
        assert_eq!(p("1.5 days"), iv(0, 1, 12 * HOUR));
        assert_eq!(p("2 weeks"), iv(0, 14, 0));
        assert_eq!(p("90s"), iv(0, 0, 90 * SECOND));
        assert_eq!(p("-3 days"), iv(0, -3, 0));
        assert_eq!(p("1 day 02:30:00"), iv(0, 1, 2 * HOUR + 30 * MINUTE));
        assert_eq!(p("00:00:00.25"), iv(0, 0, SECOND / 4));
        assert_eq!(p("48 hours"), iv(0, 2, 0));
        for bad in
            ["", "5", "five minutes", "1.5 months", "3 fortnights", "1:2", "99999999999 years"]
        {
            assert!(Interval::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn prints_as_postgresql_does() {
        assert_eq!(
            iv(14, 3, 4 * HOUR + 5 * MINUTE + 6 * SECOND + SECOND / 2).to_string(),
            "1 year 2 mons 3 days 04:05:06.5"
        );
        assert_eq!(iv(0, 0, 0).to_string(), "00:00:00");
        assert_eq!(iv(0, 1, 0).to_string(), "1 day");
        assert_eq!(iv(0, 0, -MINUTE).to_string(), "-00:01:00");
    }

    #[test]
    fn orders_by_length_with_thirty_day_months() {
        assert!(iv(0, 1, 0) < iv(0, 0, 25 * HOUR));
        assert!(iv(1, 0, 0) > iv(0, 29, 0));
        assert_ne!(iv(1, 0, 0), iv(0, 30, 0));
        assert_eq!(iv(1, 0, 0).length(), iv(0, 30, 0).length());
    }

    #[test]
    fn scales_carrying_fractions_down() {
        assert_eq!(iv(1, 0, 0).scale(0.5).unwrap(), iv(0, 15, 0));
        assert_eq!(iv(0, 1, 0).scale(1.5).unwrap(), iv(0, 1, 12 * HOUR));
        assert!(iv(i32::MAX, 0, 0).scale(2.0).is_err());
    }
}
