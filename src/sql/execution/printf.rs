//! PRINTF (FORMAT): SQLite's format strings. A directive is `%`, flags (`-` left-justify, `+`
//! and space for a sign, `0` zero-pad, `#` alternate form, `,` thousands separators), a width
//! and a precision (digits or `*`, taken from the arguments), and a conversion: `d i u` integers,
//! `f F e E g G` floats, `x X o` integers as unsigned in hex or octal, `c` a character, `s z` text,
//! `q Q` text quoted for SQL, `%%` a percent sign. Arguments convert as SQLite converts them
//! (text to its leading number, NULL to 0 or empty text); missing ones count as NULL.
//!
//! Invariant: the result never exceeds the byte limit it is given; a directive that would
//! make it longer is an error before anything is allocated for it.

use crate::sql::error::{Error, Result};
use crate::sql::types::Value;

/// Formats `values` by `format` (see the module docs), in at most `limit` bytes.
pub fn format(format: &str, values: &[Value], limit: usize) -> Result<String> {
    let mut out = String::new();
    let mut values = values.iter();
    let mut next = || values.next().cloned().unwrap_or(Value::Null);
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            check(&out, limit)?;
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => spec.left = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => spec.alternate = true,
                ',' => spec.thousands = true,
                _ => break,
            }
            chars.next();
        }
        if chars.peek() == Some(&'*') {
            chars.next();
            let width = integer(&next());
            spec.left |= width < 0; // a negative width from an argument left-justifies
            spec.width = Some(width.unsigned_abs().min(limit as u64 + 1) as usize);
        } else {
            spec.width = digits(&mut chars, limit);
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = match chars.peek() == Some(&'*') {
                true => {
                    chars.next();
                    let precision = integer(&next());
                    // A negative precision from an argument counts as none, as in C.
                    (precision >= 0).then(|| precision.min(limit as i64 + 1) as usize)
                }
                false => Some(digits(&mut chars, limit).unwrap_or(0)),
            };
        }
        let Some(conversion) = chars.next() else {
            out.push('%'); // a lone % at the end stands for itself, as in SQLite
            break;
        };
        if spec.width.is_some_and(|w| w > limit) {
            return Err(too_long(limit));
        }
        let body = match conversion {
            '%' => "%".to_string(),
            'd' | 'i' => signed(&spec, integer(&next())),
            'u' => unsigned(&spec, integer(&next()) as u64, 'u'),
            'x' | 'X' | 'o' => unsigned(&spec, integer(&next()) as u64, conversion),
            'f' | 'F' | 'e' | 'E' | 'g' | 'G' => float(&spec, real(&next()), conversion),
            'c' => text(&next()).chars().next().map(String::from).unwrap_or_default(),
            's' | 'z' => {
                let text = text(&next());
                match spec.precision {
                    Some(p) => text.chars().take(p).collect(),
                    None => text,
                }
            }
            'q' | 'Q' => match next() {
                Value::Null if conversion == 'Q' => "NULL".to_string(),
                Value::Null => "(NULL)".to_string(),
                value if conversion == 'Q' => format!("'{}'", text(&value).replace('\'', "''")),
                value => text(&value).replace('\'', "''"),
            },
            other => {
                return Err(Error::Invalid(format!("printf(): unknown conversion %{other}")));
            }
        };
        if body.len() > limit {
            return Err(too_long(limit));
        }
        pad(&mut out, &spec, &body, conversion);
        check(&out, limit)?;
    }
    Ok(out)
}

/// A directive's flags, width and precision.
#[derive(Default)]
struct Spec {
    left: bool,
    plus: bool,
    space: bool,
    zero: bool,
    alternate: bool,
    thousands: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// A width or precision written as digits (capped just past `limit`), or none.
fn digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, limit: usize) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        let value = n.unwrap_or(0).saturating_mul(10).saturating_add(digit as usize);
        n = Some(value.min(limit + 1));
    }
    n
}

/// Pads `body` to the directive's width.
fn pad(out: &mut String, spec: &Spec, body: &str, conversion: char) {
    let width = spec.width.unwrap_or(0);
    let length = body.chars().count();
    if length >= width {
        out.push_str(body);
        return;
    }
    let fill = width - length;
    let numeric = "diuxXofFeEgG".contains(conversion);
    if spec.left {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero && numeric && !body.ends_with("Inf") && !body.ends_with("NaN") {
        // Zeros go after the sign or the 0x prefix.
        let split = body
            .strip_prefix(['-', '+', ' '])
            .map_or(0, |_| 1)
            .max(if body.starts_with("0x") || body.starts_with("0X") { 2 } else { 0 });
        out.push_str(&body[..split]);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(&body[split..]);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(body);
    }
}

fn sign(spec: &Spec, negative: bool) -> &'static str {
    match (negative, spec.plus, spec.space) {
        (true, _, _) => "-",
        (false, true, _) => "+",
        (false, false, true) => " ",
        _ => "",
    }
}

fn signed(spec: &Spec, n: i64) -> String {
    let mut digits = n.unsigned_abs().to_string();
    if let Some(precision) = spec.precision
        && digits.len() < precision
    {
        digits = format!("{}{digits}", "0".repeat(precision - digits.len()));
    }
    if spec.thousands {
        digits = group_thousands(&digits);
    }
    format!("{}{digits}", sign(spec, n < 0))
}

fn unsigned(spec: &Spec, n: u64, conversion: char) -> String {
    let (digits, prefix) = match conversion {
        'x' => (format!("{n:x}"), "0x"),
        'X' => (format!("{n:X}"), "0X"),
        'u' => (n.to_string(), ""),
        _ => (format!("{n:o}"), "0"),
    };
    let digits = match spec.precision {
        Some(precision) if digits.len() < precision => {
            format!("{}{digits}", "0".repeat(precision - digits.len()))
        }
        _ => digits,
    };
    let digits = match spec.thousands && conversion == 'u' {
        true => group_thousands(&digits),
        false => digits,
    };
    match spec.alternate && n != 0 {
        true => format!("{prefix}{digits}"),
        false => digits,
    }
}

fn float(spec: &Spec, f: f64, conversion: char) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return format!("{}Inf", sign(spec, f < 0.0));
    }
    let precision = spec.precision.unwrap_or(6).min(350);
    let magnitude = f.abs();
    let body = match conversion {
        'f' | 'F' => format!("{magnitude:.precision$}"),
        'e' | 'E' => exponent(magnitude, precision, conversion == 'E'),
        _ => {
            // %g: the shorter of %e and %f for the value, trailing zeros removed.
            let significant = precision.max(1);
            let exponent_of = if magnitude == 0.0 {
                0
            } else {
                let e = exponent(magnitude, significant - 1, false);
                e.rsplit('e').next().and_then(|x| x.parse::<i32>().ok()).unwrap_or(0)
            };
            let formatted = if exponent_of < -4 || exponent_of >= significant as i32 {
                exponent(magnitude, significant - 1, conversion == 'G')
            } else {
                let decimals = (significant as i32 - 1 - exponent_of).max(0) as usize;
                format!("{magnitude:.decimals$}")
            };
            if spec.alternate { formatted } else { strip_zeros(&formatted) }
        }
    };
    format!("{}{body}", sign(spec, f.is_sign_negative() && f != 0.0))
}

/// `m.mmmme+XX` as C prints it.
fn exponent(magnitude: f64, precision: usize, upper: bool) -> String {
    let rust = format!("{magnitude:.precision$e}");
    let (mantissa, exponent) = rust.split_once('e').unwrap_or((&rust, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let e = if upper { 'E' } else { 'e' };
    format!("{mantissa}{e}{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs())
}

/// Removes trailing zeros after a decimal point (and the point), keeping any exponent.
fn strip_zeros(formatted: &str) -> String {
    let (number, exponent) = match formatted.find(['e', 'E']) {
        Some(at) => formatted.split_at(at),
        None => (formatted, ""),
    };
    let number = match number.contains('.') {
        true => number.trim_end_matches('0').trim_end_matches('.'),
        false => number,
    };
    format!("{number}{exponent}")
}

fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An argument as an integer, as SQLite converts it.
fn integer(value: &Value) -> i64 {
    match value {
        Value::Null => 0,
        Value::Boolean(b) => *b as i64,
        Value::Integer(i) => *i,
        Value::Float(f) if f.is_nan() => 0,
        Value::Float(f) => f.clamp(i64::MIN as f64, i64::MAX as f64) as i64,
        Value::String(s) => leading_number(s) as i64,
        Value::Timestamp(t) => *t,
        Value::Interval(i) => i.fixed_micros().unwrap_or(0),
    }
}

/// An argument as a float, as SQLite converts it.
fn real(value: &Value) -> f64 {
    match value {
        Value::Null => 0.0,
        Value::Boolean(b) => *b as i64 as f64,
        Value::Integer(i) => *i as f64,
        Value::Float(f) => *f,
        Value::String(s) => leading_number(s),
        Value::Timestamp(_) | Value::Interval(_) => integer(value) as f64,
    }
}

/// An argument as text (NULL: empty).
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The number a text starts with (0 if none): `[+-]digits[.digits][e[+-]digits]`, read in one
/// pass.
fn leading_number(s: &str) -> f64 {
    let s = s.trim_start().as_bytes();
    let digits = |from: usize| from + s[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut end = usize::from(matches!(s.first(), Some(b'+' | b'-')));
    let whole = digits(end);
    end = whole;
    if s.get(end) == Some(&b'.') {
        end = digits(end + 1);
    }
    if matches!(s.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(s.get(end + 1), Some(b'+' | b'-')));
        let exponent = digits(end + 1 + sign);
        if exponent > end + 1 + sign {
            end = exponent;
        }
    }
    std::str::from_utf8(&s[..end]).ok().and_then(|n| n.parse().ok()).unwrap_or(0.0)
}

fn check(out: &str, limit: usize) -> Result<()> {
    match out.len() > limit {
        true => Err(too_long(limit)),
        false => Ok(()),
    }
}

fn too_long(limit: usize) -> Error {
    Error::OutOfRange(format!("printf() would build a text longer than {limit} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(format_string: &str, values: &[Value]) -> String {
        format(format_string, values, 1 << 20).unwrap()
    }

    #[test]
    fn conversions_match_sqlite() {
        let s = |v: &str| Value::String(v.into());
        let i = Value::Integer;
        let r = Value::Float;
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            (
                "%d|%5d|%-5d|%05d|%+d",
                vec![i(42), i(42), i(42), i(-42), i(7)],
                "42|   42|42   |-0042|+7",
            ),
            ("%,d %.3d %u", vec![i(1234567), i(5), i(-3)], "1,234,567 005 18446744073709551613"),
            ("%x %X %#x %o %#o", vec![i(255), i(255), i(255), i(8), i(8)], "ff FF 0xff 10 010"),
            ("%x", vec![i(-1)], "ffffffffffffffff"),
            (
                "%f %.2f %8.3f %-8.1f|",
                vec![r(1.5), r(2.345), r(-1.0), r(3.0)],
                "1.500000 2.35   -1.000 3.0     |",
            ),
            ("%e %.2E", vec![r(12345.678), r(0.000123)], "1.234568e+04 1.23E-04"),
            (
                "%g %g %g %g",
                vec![r(100000.0), r(1000000.0), r(0.0001), r(0.00001)],
                "100000 1e+06 0.0001 1e-05",
            ),
            ("%g %.3g", vec![r(1.5), r(4.56789)], "1.5 4.57"),
            ("%s|%5s|%-5s|%.2s", vec![s("ab"), s("ab"), s("ab"), s("abc")], "ab|   ab|ab   |ab"),
            ("%s %d %f %s", vec![Value::Null, Value::Null, Value::Null], " 0 0.000000 "),
            ("%q %Q %Q", vec![s("it's"), s("it's"), Value::Null], "it''s 'it''s' NULL"),
            ("%c%c", vec![s("xyz"), i(5)], "x5"),
            ("%d %f", vec![s("12abc"), s(" 2.5e1x")], "12 25.000000"),
            ("%*d|%-*d|%.*f", vec![i(4), i(1), i(3), i(2), i(2), r(1.0)], "   1|2  |1.00"),
            ("100%% %", vec![], "100% %"),
            ("%d", vec![r(-2.9)], "-2"),
            ("%f %f", vec![r(f64::INFINITY), r(f64::NAN)], "Inf NaN"),
        ];
        for (format_string, values, expected) in cases {
            assert_eq!(f(format_string, &values), expected, "{format_string}");
        }
    }

    #[test]
    fn the_result_stays_within_its_limit() {
        assert!(format("%1000000000d", &[Value::Integer(1)], 1 << 20).is_err());
        assert!(format("%*d", &[Value::Integer(1 << 40), Value::Integer(1)], 1 << 20).is_err());
        assert!(format("%.*f", &[Value::Integer(1 << 40), Value::Float(1.0)], 1 << 20).is_ok());
        assert!(
            format("%s%s", &[Value::String("x".repeat(600)), Value::String("y".repeat(600))], 1000)
                .is_err()
        );
        assert!(format("%y", &[], 100).is_err(), "unknown conversions are errors");
    }
}
