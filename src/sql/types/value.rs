//! SQL values and their operations.

use super::{DataType, Interval, time};
use crate::encoding::keycode::{self, KeyReader};
use crate::sql::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// The longest text an expression may build (`||`, REPLACE, PRINTF, GROUP_CONCAT's pieces).
pub const MAX_TEXT_BYTES: usize = 64 << 20;

/// A row of values.
pub type Row = Vec<Value>;

/// One SQL value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Value {
    /// The unknown value.
    Null,
    /// TRUE or FALSE.
    Boolean(bool),
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    String(String),
    /// A UTC timestamp in microseconds since 1970 (see `time.rs`).
    Timestamp(i64),
    /// A span of months, days and microseconds (see `interval.rs`).
    Interval(Interval),
}

/// Key tags of each value kind, in the order kinds sort.
const KEY_NULL: u8 = 0x00;
const KEY_BOOLEAN: u8 = 0x01;
const KEY_INTEGER: u8 = 0x02;
const KEY_FLOAT: u8 = 0x03;
const KEY_STRING: u8 = 0x04;
const KEY_TIMESTAMP: u8 = 0x05;
const KEY_INTERVAL: u8 = 0x06;

impl Value {
    /// About how many bytes the value takes in memory or on the wire: what byte budgets and
    /// page sizes count. A function of the value alone, so it is the same on every replica.
    pub fn size(&self) -> usize {
        match self {
            Value::Null | Value::Boolean(_) => 1,
            Value::Integer(_) | Value::Float(_) | Value::Timestamp(_) => 8,
            Value::String(s) => s.len() + 8,
            Value::Interval(_) => 16,
        }
    }

    /// The value's data type; `None` for NULL.
    pub fn datatype(&self) -> Option<DataType> {
        match self {
            Value::Null => None,
            Value::Boolean(_) => Some(DataType::Boolean),
            Value::Integer(_) => Some(DataType::Integer),
            Value::Float(_) => Some(DataType::Float),
            Value::String(_) => Some(DataType::String),
            Value::Timestamp(_) => Some(DataType::Timestamp),
            Value::Interval(_) => Some(DataType::Interval),
        }
    }

    /// True for NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The name of the value's type, for messages.
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Boolean(_) => "BOOLEAN",
            Value::Integer(_) => "INTEGER",
            Value::Float(_) => "FLOAT",
            Value::String(_) => "STRING",
            Value::Timestamp(_) => "TIMESTAMP",
            Value::Interval(_) => "INTERVAL",
        }
    }

    /// The value as SQL literal text, for messages (strings quoted).
    pub fn to_sql(&self) -> String {
        match self {
            Value::String(s) => format!("'{}'", s.replace('\'', "''")),
            Value::Timestamp(_) => format!("TIMESTAMP '{self}'"),
            Value::Interval(_) => format!("INTERVAL '{self}'"),
            other => other.to_string(),
        }
    }

    /// Appends the order-preserving key encoding of the value.
    pub fn encode_key(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(KEY_NULL),
            Value::Boolean(b) => {
                out.push(KEY_BOOLEAN);
                keycode::put_bool(out, *b);
            }
            Value::Integer(i) => {
                out.push(KEY_INTEGER);
                keycode::put_i64(out, *i);
            }
            Value::Float(f) => {
                out.push(KEY_FLOAT);
                keycode::put_f64(out, *f);
            }
            Value::String(s) => {
                out.push(KEY_STRING);
                keycode::put_str(out, s);
            }
            Value::Timestamp(t) => {
                out.push(KEY_TIMESTAMP);
                keycode::put_i64(out, *t);
            }
            Value::Interval(i) => {
                // The length first, so keys sort as intervals do; then the parts.
                out.push(KEY_INTERVAL);
                let length = i.length();
                keycode::put_i64(out, (length >> 64) as i64);
                keycode::put_u64(out, length as u64);
                keycode::put_i64(out, i64::from(i.months));
                keycode::put_i64(out, i64::from(i.days));
                keycode::put_i64(out, i.micros);
            }
        }
    }

    /// Decodes a value written by [`Value::encode_key`].
    pub fn decode_key(reader: &mut KeyReader<'_>) -> Result<Value> {
        Ok(match reader.get_u8()? {
            KEY_NULL => Value::Null,
            KEY_BOOLEAN => Value::Boolean(reader.get_bool()?),
            KEY_INTEGER => Value::Integer(reader.get_i64()?),
            KEY_FLOAT => Value::Float(reader.get_f64()?),
            KEY_STRING => Value::String(reader.get_string()?),
            KEY_TIMESTAMP => Value::Timestamp(reader.get_i64()?),
            KEY_INTERVAL => {
                reader.get_i64()?;
                reader.get_u64()?;
                let part = |v: i64| {
                    i32::try_from(v).map_err(|_| {
                        crate::encoding::DecodeError("interval key part out of range".into())
                    })
                };
                let months = part(reader.get_i64()?)?;
                let days = part(reader.get_i64()?)?;
                Value::Interval(Interval { months, days, micros: reader.get_i64()? })
            }
            tag => {
                return Err(crate::encoding::DecodeError(format!(
                    "invalid value key tag {tag:#04x}"
                ))
                .into());
            }
        })
    }

    /// SQL comparison: `None` when either side is NULL; an error for incomparable types.
    pub fn compare(&self, other: &Value) -> Result<Option<Ordering>> {
        if self.is_null() || other.is_null() {
            return Ok(None);
        }
        if let Some(ordering) = self.compare_same_kind(other) {
            return Ok(Some(ordering));
        }
        // A string against a timestamp or an interval is read as one ('2024-05-01', '5 min').
        let ordering = match (self, other) {
            (Value::String(_), Value::Timestamp(_) | Value::Interval(_)) => {
                other.compare(self)?.map(Ordering::reverse)
            }
            (Value::Timestamp(_) | Value::Interval(_), Value::String(_)) => {
                self.compare_same_kind(&other.read_as(self)?)
            }
            _ => None,
        };
        ordering.map(Some).ok_or_else(|| {
            Error::TypeMismatch(format!(
                "cannot compare {} with {}",
                self.type_name(),
                other.type_name()
            ))
        })
    }

    /// A string read as a value of `like`'s kind (a timestamp or an interval); other values
    /// are returned as they are.
    fn read_as(&self, like: &Value) -> Result<Value> {
        match (self, like) {
            (Value::String(s), Value::Timestamp(_)) => Ok(Value::Timestamp(time::parse(s)?)),
            (Value::String(s), Value::Interval(_)) => Ok(Value::Interval(Interval::parse(s)?)),
            _ => Ok(self.clone()),
        }
    }

    /// Compares two values of comparable kinds (integers and floats by value); `None` for
    /// different kinds or NULL.
    fn compare_same_kind(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        Some(match (self, other) {
            (Boolean(a), Boolean(b)) => a.cmp(b),
            (Integer(a), Integer(b)) => a.cmp(b),
            (Integer(a), Float(b)) => compare_int_float(*a, *b),
            (Float(a), Integer(b)) => compare_int_float(*b, *a).reverse(),
            (Float(a), Float(b)) => compare_floats(*a, *b),
            (String(a), String(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Interval(a), Interval(b)) => a.cmp(b),
            _ => return None,
        })
    }

    /// SQL equality: NULL when either side is NULL.
    pub fn sql_eq(&self, other: &Value) -> Result<Value> {
        Ok(match self.compare(other)? {
            None => Value::Null,
            Some(ordering) => Value::Boolean(ordering == Ordering::Equal),
        })
    }

    /// Interprets the value as a condition: TRUE is true; FALSE and NULL are not.
    pub fn is_true(&self) -> Result<bool> {
        match self {
            Value::Boolean(b) => Ok(*b),
            Value::Null => Ok(false),
            other => Err(Error::TypeMismatch(format!(
                "expected a BOOLEAN condition, got {}",
                other.type_name()
            ))),
        }
    }

    /// The value as a three-valued boolean: `None` for NULL.
    pub fn as_bool(&self) -> Result<Option<bool>> {
        match self {
            Value::Boolean(b) => Ok(Some(*b)),
            Value::Null => Ok(None),
            other => {
                Err(Error::TypeMismatch(format!("expected BOOLEAN, got {}", other.type_name())))
            }
        }
    }

    /// Applies an arithmetic operator. Integer arithmetic is checked; mixing integers and
    /// floats gives a float.
    pub fn arithmetic(&self, op: ArithmeticOp, other: &Value) -> Result<Value> {
        use Value::*;
        let overflow = || Error::OutOfRange("integer out of range".into());
        Ok(match (self, other) {
            (Null, _) | (_, Null) => Null,
            (Integer(a), Integer(b)) => Integer(match op {
                ArithmeticOp::Add => a.checked_add(*b).ok_or_else(overflow)?,
                ArithmeticOp::Subtract => a.checked_sub(*b).ok_or_else(overflow)?,
                ArithmeticOp::Multiply => a.checked_mul(*b).ok_or_else(overflow)?,
                ArithmeticOp::Divide if *b == 0 => return Err(Error::DivisionByZero),
                ArithmeticOp::Divide => a.checked_div(*b).ok_or_else(overflow)?,
                ArithmeticOp::Remainder if *b == 0 => return Err(Error::DivisionByZero),
                ArithmeticOp::Remainder => a.checked_rem(*b).unwrap_or(0), // MIN % -1
            }),
            (Integer(_) | Float(_), Integer(_) | Float(_)) => {
                let (a, b) = (self.as_f64(), other.as_f64());
                Float(match op {
                    ArithmeticOp::Add => a + b,
                    ArithmeticOp::Subtract => a - b,
                    ArithmeticOp::Multiply => a * b,
                    ArithmeticOp::Divide | ArithmeticOp::Remainder if b == 0.0 => {
                        return Err(Error::DivisionByZero);
                    }
                    ArithmeticOp::Divide => a / b,
                    ArithmeticOp::Remainder => a % b,
                })
            }
            (Timestamp(_) | Interval(_), _) | (_, Timestamp(_) | Interval(_)) => {
                return super::interval::arithmetic(self, op, other);
            }
            (a, b) => {
                return Err(Error::TypeMismatch(format!(
                    "cannot apply {op} to {} and {}",
                    a.type_name(),
                    b.type_name()
                )));
            }
        })
    }

    /// The numeric value as a float (0 for non-numbers; callers check the type first).
    fn as_f64(&self) -> f64 {
        match self {
            Value::Integer(i) => *i as f64,
            Value::Float(f) => *f,
            _ => 0.0,
        }
    }

    /// Negates a number.
    pub fn negate(&self) -> Result<Value> {
        match self {
            Value::Null => Ok(Value::Null),
            Value::Integer(i) => i
                .checked_neg()
                .map(Value::Integer)
                .ok_or_else(|| Error::OutOfRange("integer out of range".into())),
            Value::Float(f) => Ok(Value::Float(-f)),
            Value::Interval(i) => Ok(Value::Interval(i.checked_neg()?)),
            other => Err(Error::TypeMismatch(format!("cannot negate {}", other.type_name()))),
        }
    }

    /// Checks that the value is a number (unary plus).
    pub fn identity(&self) -> Result<Value> {
        match self {
            Value::Null | Value::Integer(_) | Value::Float(_) => Ok(self.clone()),
            other => {
                Err(Error::TypeMismatch(format!("cannot apply unary + to {}", other.type_name())))
            }
        }
    }

    /// String concatenation (`||`): NULL if either side is NULL, otherwise the text forms;
    /// an error past [`MAX_TEXT_BYTES`] (checked before anything is built).
    pub fn concat(&self, other: &Value) -> Result<Value> {
        let text_len = |v: &Value| match v {
            Value::String(s) => s.len(),
            _ => 32, // a number's or boolean's text
        };
        Ok(match (self, other) {
            (Value::Null, _) | (_, Value::Null) => Value::Null,
            (a, b) if text_len(a) + text_len(b) > MAX_TEXT_BYTES => {
                return Err(Error::OutOfRange(format!(
                    "|| would build a text longer than {MAX_TEXT_BYTES} bytes"
                )));
            }
            (a, b) => Value::String(format!("{a}{b}")),
        })
    }

    /// Converts the value to `datatype` (CAST). NULL stays NULL.
    pub fn cast(&self, datatype: DataType) -> Result<Value> {
        use Value::*;
        let invalid = |value: &Value| {
            Error::TypeMismatch(format!("cannot cast {} to {datatype}", value.to_sql()))
        };
        Ok(match (self, datatype) {
            (Null, _) => Null,
            (Boolean(_), DataType::Boolean)
            | (Integer(_), DataType::Integer)
            | (Float(_), DataType::Float)
            | (String(_), DataType::String) => self.clone(),
            (Boolean(b), DataType::Integer) => Integer(*b as i64),
            (Boolean(b), DataType::Float) => Float(if *b { 1.0 } else { 0.0 }),
            (Integer(i), DataType::Boolean) => Boolean(*i != 0),
            (Integer(i), DataType::Float) => Float(*i as f64),
            (Float(f), DataType::Integer) => Integer(float_to_int(*f)?),
            (Float(_), DataType::Boolean) => return Err(invalid(self)),
            (String(s), DataType::Integer) => Integer(s.trim().parse().map_err(|_| invalid(self))?),
            (String(s), DataType::Float) => Float(s.trim().parse().map_err(|_| invalid(self))?),
            (String(s), DataType::Boolean) => {
                Boolean(match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "t" | "yes" | "y" | "on" | "1" => true,
                    "false" | "f" | "no" | "n" | "off" | "0" => false,
                    _ => return Err(invalid(self)),
                })
            }
            (value, DataType::String) => String(value.to_string()),
            (Timestamp(_), DataType::Timestamp) | (Interval(_), DataType::Interval) => self.clone(),
            (String(s), DataType::Timestamp) => Timestamp(time::parse(s)?),
            (String(s), DataType::Interval) => Interval(super::Interval::parse(s)?),
            (Timestamp(_) | Interval(_), _) | (_, DataType::Timestamp | DataType::Interval) => {
                return Err(invalid(self));
            }
        })
    }

    /// Converts a value for storage in a column of `datatype`: integers widen to floats and
    /// integral floats narrow to integers; anything else of another type is a mismatch.
    pub fn coerce_to(self, datatype: DataType) -> Result<Value> {
        match (&self, datatype) {
            (Value::Null, _) => Ok(self),
            (Value::Integer(i), DataType::Float) => Ok(Value::Float(*i as f64)),
            (Value::Float(f), DataType::Integer) if f.fract() == 0.0 => {
                Ok(Value::Integer(float_to_int(*f)?))
            }
            // ISO 8601 text stores in a TIMESTAMP column, '5 minutes' in an INTERVAL one.
            (Value::String(s), DataType::Timestamp) => Ok(Value::Timestamp(time::parse(s)?)),
            (Value::String(s), DataType::Interval) => Ok(Value::Interval(Interval::parse(s)?)),
            (value, datatype) if value.datatype() == Some(datatype) => Ok(self),
            (value, datatype) => Err(Error::TypeMismatch(format!(
                "cannot store {} value {} in a column of type {datatype}",
                value.type_name(),
                value.to_sql()
            ))),
        }
    }

    /// SQL LIKE: `%` matches any run of characters, `_` any one character, `\` escapes.
    /// Case-sensitive. NULL if either side is NULL.
    pub fn like(&self, pattern: &Value) -> Result<Value> {
        match (self, pattern) {
            (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
            (Value::String(text), Value::String(pattern)) => {
                Ok(Value::Boolean(like_match(text, pattern)))
            }
            (a, b) => Err(Error::TypeMismatch(format!(
                "cannot apply LIKE to {} and {}",
                a.type_name(),
                b.type_name()
            ))),
        }
    }
}

/// Converts a float to an integer by truncation toward zero, as SQLite's CAST does.
fn float_to_int(f: f64) -> Result<i64> {
    if f.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
        return Err(Error::OutOfRange(format!("{f} does not fit in an INTEGER")));
    }
    Ok(f.trunc() as i64)
}

/// Compares floats with NaN greatest and -0.0 equal to 0.0 (PostgreSQL's order).
fn compare_floats(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        // Neither is NaN, so partial_cmp always answers.
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Compares an integer with a float exactly (no rounding of large integers).
fn compare_int_float(i: i64, f: f64) -> Ordering {
    if f.is_nan() || f >= 9.223_372_036_854_776e18 {
        return Ordering::Less;
    }
    if f < -9.223_372_036_854_776e18 {
        return Ordering::Greater;
    }
    let truncated = f.trunc();
    match i.cmp(&(truncated as i64)) {
        Ordering::Equal => 0.0.partial_cmp(&(f - truncated)).unwrap_or(Ordering::Equal),
        other => other,
    }
}

/// Matches `text` against a LIKE pattern with backtracking on the last `%` (linear space,
/// O(n·m) time at worst).
fn like_match(text: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Any,
        One,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Token::Any,
            '_' => Token::One,
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            c => Token::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Any) => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(Token::One) => {
                t += 1;
                p += 1;
            }
            Some(Token::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match backtrack {
                Some((bp, bt)) => {
                    p = bp + 1;
                    t = bt + 1;
                    backtrack = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|token| *token == Token::Any)
}

/// Arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArithmeticOp {
    /// `+`
    Add,
    /// `-`
    Subtract,
    /// `*`
    Multiply,
    /// `/`
    Divide,
    /// `%`
    Remainder,
}

impl fmt::Display for ArithmeticOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArithmeticOp::Add => "+",
            ArithmeticOp::Subtract => "-",
            ArithmeticOp::Multiply => "*",
            ArithmeticOp::Divide => "/",
            ArithmeticOp::Remainder => "%",
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Boolean(true) => f.write_str("TRUE"),
            Value::Boolean(false) => f.write_str("FALSE"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Float(x) if x.is_nan() => f.write_str("NaN"),
            Value::Float(x) if x.is_infinite() => {
                f.write_str(if *x > 0.0 { "Infinity" } else { "-Infinity" })
            }
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) => f.write_str(s),
            Value::Timestamp(t) => f.write_str(&time::format(*t)),
            Value::Interval(i) => write!(f, "{i}"),
        }
    }
}

impl Ord for Value {
    /// The total order used for sorting and grouping: NULL, booleans, numbers, strings,
    /// timestamps, intervals.
    fn cmp(&self, other: &Self) -> Ordering {
        use Value::*;
        fn rank(value: &Value) -> u8 {
            match value {
                Null => 0,
                Boolean(_) => 1,
                Integer(_) | Float(_) => 2,
                String(_) => 3,
                Timestamp(_) => 4,
                Interval(_) => 5,
            }
        }
        self.compare_same_kind(other).unwrap_or_else(|| rank(self).cmp(&rank(other)))
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl Hash for Value {
    /// Consistent with `Eq`: equal integers and floats hash alike.
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => 0u8.hash(state),
            Value::Boolean(b) => (1u8, b).hash(state),
            Value::Integer(i) => (2u8, i).hash(state),
            Value::Float(f) if f.is_nan() => (3u8, u64::MAX).hash(state),
            Value::Float(f) if f.fract() == 0.0 && *f >= -9.2e18 && *f <= 9.2e18 => {
                (2u8, *f as i64).hash(state)
            }
            Value::Float(f) => (3u8, f.to_bits()).hash(state),
            Value::String(s) => (4u8, s).hash(state),
            Value::Timestamp(t) => (5u8, t).hash(state),
            Value::Interval(i) => (6u8, i).hash(state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(values: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        for value in values {
            value.encode_key(&mut out);
        }
        out
    }

    /// Values of one kind (or NULL), as a column holds them.
    fn column_value() -> impl Strategy<Value = Vec<Value>> {
        prop_oneof![
            prop::collection::vec(
                prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Boolean)],
                2
            ),
            prop::collection::vec(
                prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::Integer)],
                2
            ),
            prop::collection::vec(
                prop_oneof![
                    Just(Value::Null),
                    any::<f64>().prop_filter("not NaN", |f| !f.is_nan()).prop_map(Value::Float)
                ],
                2
            ),
            prop::collection::vec(
                prop_oneof![Just(Value::Null), ".{0,8}".prop_map(Value::String)],
                2
            ),
            prop::collection::vec(
                prop_oneof![
                    Just(Value::Null),
                    (time::MIN_TIMESTAMP..=time::MAX_TIMESTAMP).prop_map(Value::Timestamp)
                ],
                2
            ),
            prop::collection::vec(
                prop_oneof![
                    Just(Value::Null),
                    (-50i32..50, -50i32..50, -5_000i64..5_000).prop_map(|(m, d, s)| {
                        Value::Interval(Interval { months: m, days: d, micros: s * time::HOUR })
                    })
                ],
                2
            ),
        ]
    }

    proptest! {
        #[test]
        fn key_order_equals_value_order(pair in column_value()) {
            let (a, b) = (&pair[0], &pair[1]);
            prop_assert_eq!(a.cmp(b), key(std::slice::from_ref(a)).cmp(&key(std::slice::from_ref(b))));
        }

        #[test]
        fn tuple_key_order_equals_tuple_order(a in column_value(), b in column_value()) {
            // Tuples whose elements share kinds position by position, as composite keys do.
            prop_assume!(a.iter().zip(&b).all(|(x, y)| x.is_null() || y.is_null() || x.datatype() == y.datatype()));
            prop_assert_eq!(a.cmp(&b), key(&a).cmp(&key(&b)));
        }

        #[test]
        fn key_roundtrip(values in column_value()) {
            let encoded = key(&values);
            let mut reader = KeyReader::new(&encoded);
            let decoded: Vec<Value> = (0..values.len()).map(|_| Value::decode_key(&mut reader).unwrap()).collect();
            prop_assert!(reader.is_empty());
            prop_assert_eq!(decoded, values);
        }

        #[test]
        fn int_float_comparison_is_exact(i: i64, f: f64) {
            prop_assume!(!f.is_nan());
            let expected = (i as i128 * 4).cmp(&((f * 4.0) as i128));
            if f.abs() < 1e15 && f.fract() * 4.0 == (f.fract() * 4.0).trunc() {
                prop_assert_eq!(Value::Integer(i).cmp(&Value::Float(f)), expected);
            }
            prop_assert_eq!(Value::Integer(i).cmp(&Value::Float(f)), Value::Float(f).cmp(&Value::Integer(i)).reverse());
        }
    }

    #[test]
    fn three_valued_comparison_and_type_errors() {
        assert_eq!(Value::Integer(1).compare(&Value::Null).unwrap(), None);
        assert_eq!(Value::Integer(1).compare(&Value::Float(1.0)).unwrap(), Some(Ordering::Equal));
        assert!(matches!(
            Value::Integer(1).compare(&Value::String("1".into())),
            Err(Error::TypeMismatch(_))
        ));
        assert!(Value::Null.is_true().is_ok_and(|b| !b));
    }

    #[test]
    fn checked_arithmetic() {
        use ArithmeticOp::*;
        let int = Value::Integer;
        assert_eq!(int(7).arithmetic(Divide, &int(2)).unwrap(), int(3));
        assert_eq!(int(-7).arithmetic(Remainder, &int(2)).unwrap(), int(-1));
        assert_eq!(int(1).arithmetic(Divide, &int(0)), Err(Error::DivisionByZero));
        assert_eq!(Value::Float(1.0).arithmetic(Divide, &int(0)), Err(Error::DivisionByZero));
        assert!(matches!(int(i64::MAX).arithmetic(Add, &int(1)), Err(Error::OutOfRange(_))));
        assert!(matches!(int(i64::MIN).arithmetic(Divide, &int(-1)), Err(Error::OutOfRange(_))));
        assert!(matches!(int(i64::MIN).negate(), Err(Error::OutOfRange(_))));
        assert_eq!(int(1).arithmetic(Add, &Value::Float(0.5)).unwrap(), Value::Float(1.5));
        assert_eq!(int(1).arithmetic(Add, &Value::Null).unwrap(), Value::Null);
        assert!(matches!(
            int(1).arithmetic(Add, &Value::String("a".into())),
            Err(Error::TypeMismatch(_))
        ));
    }

    #[test]
    fn casts_and_coercions() {
        assert_eq!(Value::Float(-2.9).cast(DataType::Integer).unwrap(), Value::Integer(-2));
        assert_eq!(
            Value::String(" 42 ".into()).cast(DataType::Integer).unwrap(),
            Value::Integer(42)
        );
        assert!(Value::String("4x".into()).cast(DataType::Integer).is_err());
        assert!(matches!(Value::Float(1e30).cast(DataType::Integer), Err(Error::OutOfRange(_))));
        assert_eq!(Value::Integer(3).cast(DataType::String).unwrap(), Value::String("3".into()));
        assert_eq!(Value::Integer(3).coerce_to(DataType::Float).unwrap(), Value::Float(3.0));
        assert!(Value::Float(3.5).coerce_to(DataType::Integer).is_err());
        assert!(Value::String("3".into()).coerce_to(DataType::Integer).is_err());
    }

    #[test]
    fn like_patterns() {
        let like = |t: &str, p: &str| like_match(t, p);
        assert!(like("Alice", "A%"));
        assert!(like("Alice", "%ice"));
        assert!(like("Alice", "_lic_"));
        assert!(!like("Alice", "a%"));
        assert!(like("", "%"));
        assert!(!like("", "_"));
        assert!(like("a%b", "a\\%b"));
        assert!(!like("axb", "a\\%b"));
        assert!(like("mississippi", "%iss%ppi"));
        assert!(!like("mississippi", "%iss%ppx"));
    }

    #[test]
    fn display_forms() {
        assert_eq!(Value::Float(100.5).to_string(), "100.5");
        assert_eq!(Value::Float(f64::INFINITY).to_string(), "Infinity");
        assert_eq!(Value::Boolean(true).to_string(), "TRUE");
        assert_eq!(Value::String("it's".into()).to_sql(), "'it''s'");
    }
}
