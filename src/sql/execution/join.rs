//! Joins. Both read the right input into memory and stream the left input, so output follows
//! the left input's order (deterministic).

use super::Rows;
use crate::sql::budget::Budget;
use crate::sql::error::Result;
use crate::sql::planner::Expression;
use crate::sql::types::{Row, Value};
use std::collections::HashMap;
use std::rc::Rc;

/// Joins each left row with every right row for which `predicate` holds; with `outer`, a left
/// row without a match is kept once, padded with NULLs.
pub fn nested_loop<'a>(
    left: Rows<'a>,
    right: Rows<'a>,
    right_width: usize,
    predicate: Option<Expression>,
    outer: bool,
    budget: &'a Budget,
) -> Result<Rows<'a>> {
    let mut held = Vec::new();
    for row in right {
        let row = row?;
        budget.hold(&row)?;
        held.push(row);
    }
    let right: Rc<Vec<Row>> = Rc::new(held);
    let predicate = Rc::new(predicate);
    Ok(Box::new(left.flat_map(move |left| {
        let right = right.clone();
        let predicate = predicate.clone();
        let rows: Vec<Result<Row>> = match left {
            Err(error) => vec![Err(error)],
            Ok(left) => {
                let mut out = Vec::new();
                for right_row in right.iter() {
                    // Each combination counts: a large cross join stops at its deadline.
                    if let Err(error) = budget.tick() {
                        out.push(Err(error));
                        break;
                    }
                    let mut row = Vec::with_capacity(left.len() + right_width);
                    row.extend_from_slice(&left);
                    row.extend_from_slice(right_row);
                    match predicate.as_ref() {
                        None => out.push(Ok(row)),
                        Some(predicate) => match predicate.evaluate(&row).and_then(|v| v.is_true())
                        {
                            Ok(true) => out.push(Ok(row)),
                            Ok(false) => {}
                            Err(error) => {
                                out.push(Err(error));
                                break;
                            }
                        },
                    }
                }
                if outer && out.is_empty() {
                    let mut row = left;
                    row.extend(std::iter::repeat_n(Value::Null, right_width));
                    out.push(Ok(row));
                }
                out
            }
        };
        rows
    })))
}

/// Joins on `left[left_column] = right[right_column]` through a hash table of the right rows.
/// NULL keys never match.
pub fn hash<'a>(
    left: Rows<'a>,
    left_column: usize,
    right: Rows<'a>,
    right_column: usize,
    right_width: usize,
    outer: bool,
    budget: &'a Budget,
) -> Result<Rows<'a>> {
    let mut table: HashMap<Value, Vec<Row>> = HashMap::new();
    for row in right {
        let row = row?;
        budget.hold(&row)?;
        let key = row.get(right_column).cloned().unwrap_or(Value::Null);
        if !key.is_null() {
            table.entry(key).or_default().push(row);
        }
    }
    let table = Rc::new(table);
    Ok(Box::new(left.flat_map(move |left| {
        let rows: Vec<Result<Row>> = match left {
            Err(error) => vec![Err(error)],
            Ok(left) => {
                let matches =
                    left.get(left_column).filter(|k| !k.is_null()).and_then(|key| table.get(key));
                match matches {
                    Some(matches) => matches
                        .iter()
                        .map(|right| {
                            let mut row = Vec::with_capacity(left.len() + right_width);
                            row.extend_from_slice(&left);
                            row.extend_from_slice(right);
                            Ok(row)
                        })
                        .collect(),
                    None if outer => {
                        let mut row = left;
                        row.extend(std::iter::repeat_n(Value::Null, right_width));
                        vec![Ok(row)]
                    }
                    None => vec![],
                }
            }
        };
        rows
    })))
}
