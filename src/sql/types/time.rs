//! TIMESTAMP values: microseconds since 1970-01-01 00:00:00 UTC, on the proleptic Gregorian
//! calendar, between 0001-01-01 and 9999-12-31 (every function that makes a timestamp checks
//! the range, so a stored timestamp always prints as a four-digit year).
//!
//! There are no time zones: a literal with an offset (`+02:00`, `Z`) is converted to UTC, and
//! timestamps print in UTC as `YYYY-MM-DD HH:MM:SS[.ffffff]`. Every function here is pure
//! integer arithmetic, so every replica computes the same result.

use crate::sql::error::{Error, Result};

/// Microseconds in a second.
pub const SECOND: i64 = 1_000_000;
/// Microseconds in a minute.
pub const MINUTE: i64 = 60 * SECOND;
/// Microseconds in an hour.
pub const HOUR: i64 = 60 * MINUTE;
/// Microseconds in a day (always 24 hours: UTC has no daylight saving).
pub const DAY: i64 = 24 * HOUR;

/// The earliest timestamp: 0001-01-01 00:00:00.
pub const MIN_TIMESTAMP: i64 = -62_135_596_800 * SECOND;
/// The latest timestamp: 9999-12-31 23:59:59.999999.
pub const MAX_TIMESTAMP: i64 = 253_402_300_800 * SECOND - 1;

/// A calendar date and time of day, the broken-down form of a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// The year (1..=9999 for a timestamp in range).
    pub year: i64,
    /// The month, 1..=12.
    pub month: u32,
    /// The day of the month, 1..=31.
    pub day: u32,
    /// Microseconds since midnight, 0..DAY.
    pub time: i64,
}

impl Civil {
    /// The broken-down form of `micros`.
    pub fn of(micros: i64) -> Civil {
        let (days, time) = (micros.div_euclid(DAY), micros.rem_euclid(DAY));
        let (year, month, day) = civil_from_days(days);
        Civil { year, month, day, time }
    }

    /// The timestamp of this date and time, checked to be in range.
    pub fn timestamp(&self) -> Result<i64> {
        let days = days_from_civil(self.year, self.month, self.day);
        days.checked_mul(DAY)
            .and_then(|d| d.checked_add(self.time))
            .filter(|t| (MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(t))
            .ok_or_else(out_of_range)
    }

    /// The hour, minute, second and microsecond of the time of day.
    pub fn clock(&self) -> (i64, i64, i64, i64) {
        let t = self.time;
        (t / HOUR, t % HOUR / MINUTE, t % MINUTE / SECOND, t % SECOND)
    }
}

/// The error for a timestamp outside 0001-01-01..9999-12-31.
pub fn out_of_range() -> Error {
    Error::OutOfRange("timestamp out of range (years 1 to 9999)".into())
}

/// Checks that `micros` is a timestamp in range.
pub fn checked(micros: i64) -> Result<i64> {
    match (MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&micros) {
        true => Ok(micros),
        false => Err(out_of_range()),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Whether `year` is a leap year.
pub fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// The number of days in `month` of `year`.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `micros` moved by `months` calendar months, the day clamped to the new month's length
/// (2024-01-31 plus a month is 2024-02-29), as PostgreSQL does.
pub fn add_months(micros: i64, months: i64) -> Result<i64> {
    if months == 0 {
        return Ok(micros);
    }
    let civil = Civil::of(micros);
    let index = (civil.year * 12 + i64::from(civil.month) - 1)
        .checked_add(months)
        .ok_or_else(out_of_range)?;
    let (year, month) = (index.div_euclid(12), (index.rem_euclid(12) + 1) as u32);
    if !(1..=9999).contains(&year) {
        return Err(out_of_range());
    }
    let day = civil.day.min(days_in_month(year, month));
    Civil { year, month, day, time: civil.time }.timestamp()
}

/// Parses an ISO 8601 timestamp: `YYYY-MM-DD`, then optionally `T` or a space and
/// `HH:MM[:SS[.ffffff]]`, then optionally `Z` or an offset `±HH[:MM]` (converted to UTC).
pub fn parse(text: &str) -> Result<i64> {
    let invalid = || {
        Error::TypeMismatch(format!(
            "invalid TIMESTAMP '{text}' (expected ISO 8601, like '2024-05-01 12:30:00')"
        ))
    };
    let mut p = Scanner { bytes: text.trim().as_bytes(), at: 0 };
    let year = p.digits(4, 4).ok_or_else(invalid)?;
    p.expect(b'-').ok_or_else(invalid)?;
    let month = p.digits(1, 2).ok_or_else(invalid)?;
    p.expect(b'-').ok_or_else(invalid)?;
    let day = p.digits(1, 2).ok_or_else(invalid)?;
    if !(1..=12).contains(&month) || day < 1 || day > i64::from(days_in_month(year, month as u32)) {
        return Err(invalid());
    }
    let mut time = 0;
    if p.eat(b'T') || p.eat(b't') || p.eat(b' ') {
        let hour = p.digits(1, 2).ok_or_else(invalid)?;
        p.expect(b':').ok_or_else(invalid)?;
        let minute = p.digits(2, 2).ok_or_else(invalid)?;
        let (mut second, mut fraction) = (0, 0);
        if p.eat(b':') {
            second = p.digits(2, 2).ok_or_else(invalid)?;
            if p.eat(b'.') {
                fraction = p.fraction().ok_or_else(invalid)?;
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(invalid());
        }
        time = hour * HOUR + minute * MINUTE + second * SECOND + fraction;
    }
    p.eat(b' ');
    let offset = match p.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            p.at += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            p.at += 1;
            let hours = p.digits(2, 2).ok_or_else(invalid)?;
            let minutes = if p.eat(b':') || p.peek().is_some() {
                p.digits(2, 2).ok_or_else(invalid)?
            } else {
                0
            };
            if hours > 23 || minutes > 59 {
                return Err(invalid());
            }
            let offset = hours * HOUR + minutes * MINUTE;
            if sign == b'-' { -offset } else { offset }
        }
        Some(_) => return Err(invalid()),
    };
    if p.peek().is_some() {
        return Err(invalid());
    }
    let local = Civil { year, month: month as u32, day: day as u32, time }.timestamp()?;
    checked(local - offset)
}

/// Formats a timestamp as `YYYY-MM-DD HH:MM:SS`, with `.ffffff` (trailing zeros dropped) when
/// it has a fraction of a second.
pub fn format(micros: i64) -> String {
    let civil = Civil::of(micros);
    let (hour, minute, second, fraction) = civil.clock();
    let mut out = format!(
        "{:04}-{:02}-{:02} {hour:02}:{minute:02}:{second:02}",
        civil.year, civil.month, civil.day
    );
    push_fraction(&mut out, fraction);
    out
}

/// Appends `.ffffff` for a nonzero fraction of a second, trailing zeros dropped.
pub fn push_fraction(out: &mut String, fraction: i64) {
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// A cursor over ASCII text, for the parsers here.
pub(super) struct Scanner<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) at: usize,
}

impl Scanner<'_> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    pub(super) fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// Between `min` and `max` decimal digits, as a number.
    pub(super) fn digits(&mut self, min: usize, max: usize) -> Option<i64> {
        let start = self.at;
        while self.at - start < max && self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        if self.at - start < min {
            return None;
        }
        self.bytes[start..self.at]
            .iter()
            .try_fold(0i64, |n, b| n.checked_mul(10)?.checked_add(i64::from(b - b'0')))
    }

    /// One to six digits after a decimal point, as microseconds (more digits are refused
    /// rather than rounded).
    pub(super) fn fraction(&mut self) -> Option<i64> {
        let start = self.at;
        let value = self.digits(1, 6)?;
        let scale = 10i64.pow(6 - (self.at - start) as u32);
        if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(value * scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_iso_8601_forms() {
        let t = |s: &str| parse(s).unwrap();
        assert_eq!(t("1970-01-01"), 0);
        assert_eq!(t("1970-01-01 00:00:01"), SECOND);
        assert_eq!(t("1970-01-01T00:01"), MINUTE);
        assert_eq!(t("1970-01-01 00:00:00.5"), SECOND / 2);
        assert_eq!(t("1970-01-01 00:00:00.000001Z"), 1);
        assert_eq!(t("1970-01-01 02:00:00+02:00"), 0);
        assert_eq!(t("1970-01-01 02:00:00+0200"), 0);
        assert_eq!(t("1969-12-31 22:00:00-02"), 0);
        assert_eq!(t("2024-02-29 12:00:00"), 1_709_208_000 * SECOND);
        for bad in [
            "",
            "2024",
            "2023-02-29",
            "2024-13-01",
            "2024-01-01 24:00",
            "2024-01-01 12:00:00.1234567",
            "2024-01-01 12:00:00 junk",
            "0000-01-01",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn formats_in_utc_with_trimmed_fractions() {
        assert_eq!(format(0), "1970-01-01 00:00:00");
        assert_eq!(format(-1), "1969-12-31 23:59:59.999999");
        assert_eq!(format(1_500_000), "1970-01-01 00:00:01.5");
        assert_eq!(format(MIN_TIMESTAMP), "0001-01-01 00:00:00");
        assert_eq!(format(MAX_TIMESTAMP), "9999-12-31 23:59:59.999999");
    }

    #[test]
    fn months_clamp_to_the_end_of_the_month() {
        let t = |s: &str| parse(s).unwrap();
        assert_eq!(add_months(t("2024-01-31"), 1).unwrap(), t("2024-02-29"));
        assert_eq!(add_months(t("2024-03-31 10:00"), -1).unwrap(), t("2024-02-29 10:00"));
        assert_eq!(add_months(t("2023-12-15"), 14).unwrap(), t("2025-02-15"));
        assert!(add_months(t("9999-12-01"), 1).is_err());
    }

    proptest! {
        #[test]
        fn civil_days_round_trip(days in -719_162i64..2_932_896) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn format_then_parse_is_identity(micros in MIN_TIMESTAMP..=MAX_TIMESTAMP) {
            prop_assert_eq!(parse(&format(micros)).unwrap(), micros);
        }
    }
}
