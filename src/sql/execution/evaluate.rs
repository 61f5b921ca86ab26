//! Expression evaluation with SQL semantics (three-valued logic, NULL propagation).

use crate::sql::error::{Error, Result};
use crate::sql::parser::ast::{self, BinaryOp, UnaryOp};
use crate::sql::planner::{ConstantContext, Expression, build};
use crate::sql::types::Value;
use std::cmp::Ordering;

/// Builds and evaluates an expression that may not refer to columns (DEFAULT, LIMIT, ...).
pub fn evaluate_constant(expr: &ast::Expression, clause: &str) -> Result<Value> {
    build(expr, &ConstantContext(clause))?.evaluate(&[])
}

/// `value IN (items)`, the items offered one at a time, with SQL's NULL semantics: TRUE on a
/// match; else NULL if the value or an item is NULL (and there is an item); else FALSE.
pub(super) struct InTest {
    value: Value,
    any_item: bool,
    saw_null: bool,
    found: bool,
}

impl InTest {
    /// A test for `value`.
    pub(super) fn new(value: Value) -> Self {
        Self { value, any_item: false, saw_null: false, found: false }
    }

    /// Whether more items cannot change the result.
    pub(super) fn decided(&self) -> bool {
        self.found || (self.any_item && self.value.is_null())
    }

    /// Compares the value with one more item.
    pub(super) fn offer(&mut self, item: &Value) -> Result<()> {
        self.any_item = true;
        if !self.value.is_null() {
            match self.value.sql_eq(item)? {
                Value::Boolean(true) => self.found = true,
                Value::Null => self.saw_null = true,
                _ => {}
            }
        }
        Ok(())
    }

    /// `[NOT] IN`'s result.
    pub(super) fn result(&self, negated: bool) -> Result<Value> {
        let result = match (self.found, self.any_item && (self.saw_null || self.value.is_null())) {
            (true, _) => Value::Boolean(true),
            (false, true) => Value::Null,
            (false, false) => Value::Boolean(false),
        };
        if negated { not(result) } else { Ok(result) }
    }
}

/// Three-valued NOT.
fn not(value: Value) -> Result<Value> {
    Ok(match value.as_bool()? {
        Some(b) => Value::Boolean(!b),
        None => Value::Null,
    })
}

impl Expression {
    /// Evaluates the expression against an input row.
    pub fn evaluate(&self, row: &[Value]) -> Result<Value> {
        crate::sql::with_stack(|| self.evaluate_inner(row))
    }

    fn evaluate_inner(&self, row: &[Value]) -> Result<Value> {
        use Expression::*;
        Ok(match self {
            Constant(value) => value.clone(),
            Column(i, name) => row.get(*i).cloned().ok_or_else(|| {
                Error::Invalid(format!("internal error: column {name} (#{i}) missing from row"))
            })?,
            Outer(i, name) => {
                return Err(Error::Invalid(format!(
                    "internal error: outer reference {name} (#{i}) evaluated unbound"
                )));
            }
            Unary(UnaryOp::Not, e) => not(e.evaluate(row)?)?,
            Unary(UnaryOp::Negate, e) => e.evaluate(row)?.negate()?,
            Unary(UnaryOp::Plus, e) => e.evaluate(row)?.identity()?,
            Binary(BinaryOp::And, a, b) => {
                // FALSE wins over NULL; the right side is skipped once the left is FALSE.
                match a.evaluate(row)?.as_bool()? {
                    Some(false) => Value::Boolean(false),
                    left => match (left, b.evaluate(row)?.as_bool()?) {
                        (_, Some(false)) => Value::Boolean(false),
                        (Some(true), Some(true)) => Value::Boolean(true),
                        _ => Value::Null,
                    },
                }
            }
            Binary(BinaryOp::Or, a, b) => {
                // TRUE wins over NULL; the right side is skipped once the left is TRUE.
                match a.evaluate(row)?.as_bool()? {
                    Some(true) => Value::Boolean(true),
                    left => match (left, b.evaluate(row)?.as_bool()?) {
                        (_, Some(true)) => Value::Boolean(true),
                        (Some(false), Some(false)) => Value::Boolean(false),
                        _ => Value::Null,
                    },
                }
            }
            Binary(op, a, b) => {
                let (a, b) = (a.evaluate(row)?, b.evaluate(row)?);
                match op {
                    BinaryOp::Concat => a.concat(&b)?,
                    BinaryOp::Arithmetic(op) => a.arithmetic(*op, &b)?,
                    comparison => match a.compare(&b)? {
                        None => Value::Null,
                        Some(ordering) => Value::Boolean(match comparison {
                            BinaryOp::Equal => ordering == Ordering::Equal,
                            BinaryOp::NotEqual => ordering != Ordering::Equal,
                            BinaryOp::Less => ordering == Ordering::Less,
                            BinaryOp::LessOrEqual => ordering != Ordering::Greater,
                            BinaryOp::Greater => ordering == Ordering::Greater,
                            _ => ordering != Ordering::Less,
                        }),
                    },
                }
            }
            IsNull(e, negated) => Value::Boolean(e.evaluate(row)?.is_null() != *negated),
            InList(e, list, negated) => {
                let mut test = InTest::new(e.evaluate(row)?);
                for item in list {
                    if test.decided() {
                        break;
                    }
                    test.offer(&item.evaluate(row)?)?;
                }
                test.result(*negated)?
            }
            Between(e, low, high, negated) => {
                let value = e.evaluate(row)?;
                let above = compare_bool(&value, &low.evaluate(row)?, |o| o != Ordering::Less)?;
                let below = compare_bool(&value, &high.evaluate(row)?, |o| o != Ordering::Greater)?;
                let result = match (above, below) {
                    (Some(false), _) | (_, Some(false)) => Value::Boolean(false),
                    (Some(true), Some(true)) => Value::Boolean(true),
                    _ => Value::Null,
                };
                if *negated { not(result)? } else { result }
            }
            Like(e, pattern, negated) => {
                let result = e.evaluate(row)?.like(&pattern.evaluate(row)?)?;
                if *negated { not(result)? } else { result }
            }
            Case(operand, when, otherwise) => {
                let operand = operand.as_ref().map(|o| o.evaluate(row)).transpose()?;
                for (condition, result) in when {
                    let matched = match &operand {
                        Some(operand) => operand.sql_eq(&condition.evaluate(row)?)?.is_true()?,
                        None => condition.evaluate(row)?.is_true()?,
                    };
                    if matched {
                        return result.evaluate(row);
                    }
                }
                match otherwise {
                    Some(otherwise) => otherwise.evaluate(row)?,
                    None => Value::Null,
                }
            }
            Cast(e, datatype) => e.evaluate(row)?.cast(*datatype)?,
            Function(function, args) => super::functions::call(*function, args, row)?,
        })
    }
}

fn compare_bool(a: &Value, b: &Value, test: impl Fn(Ordering) -> bool) -> Result<Option<bool>> {
    Ok(a.compare(b)?.map(test))
}
