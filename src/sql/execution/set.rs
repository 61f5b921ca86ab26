//! Set operators between two queries' rows. Rows are equal when every value is (NULLs
//! included, as for DISTINCT). The left's rows come first and keep their order; UNION,
//! INTERSECT and EXCEPT keep the first of equal rows. The hash sets only answer membership,
//! so the output order never depends on hashing; the rows they hold count against the
//! statement's budget.

use super::Rows;
use crate::sql::budget::Budget;
use crate::sql::error::Result;
use crate::sql::parser::ast::SetOperator;
use crate::sql::types::Row;
use std::collections::HashSet;

/// Combines `left` and `right` by `op`.
pub fn combine<'a>(
    op: SetOperator,
    left: Rows<'a>,
    right: Rows<'a>,
    budget: &'a Budget,
) -> Result<Rows<'a>> {
    Ok(match op {
        SetOperator::UnionAll => Box::new(left.chain(right)),
        SetOperator::Union => distinct(Box::new(left.chain(right)), budget),
        SetOperator::Intersect | SetOperator::Except => {
            // The right side is read whole first: membership needs all of it.
            let mut other: HashSet<Row> = HashSet::new();
            for row in right {
                let row = row?;
                if !other.contains(&row) {
                    budget.hold(&row)?;
                    other.insert(row);
                }
            }
            let keep = op == SetOperator::Intersect;
            let left = left.filter(move |row| match row {
                Ok(row) => other.contains(row) == keep,
                Err(_) => true,
            });
            distinct(Box::new(left), budget)
        }
    })
}

/// The first of each set of equal rows.
pub fn distinct<'a>(rows: Rows<'a>, budget: &'a Budget) -> Rows<'a> {
    let mut seen: HashSet<Row> = HashSet::new();
    Box::new(rows.filter_map(move |row| match row {
        Ok(row) if seen.contains(&row) => None,
        Ok(row) => match budget.hold(&row) {
            Ok(()) => {
                seen.insert(row.clone());
                Some(Ok(row))
            }
            Err(error) => Some(Err(error)),
        },
        Err(error) => Some(Err(error)),
    }))
}
