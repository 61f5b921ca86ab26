//! Recursive common tables ([`Node::Recursive`]): the initial rows, then the step run on each
//! run's new rows, lazily, so a LIMIT above stops the recursion. Every row produced counts
//! against the statement's memory budget (and each run against its deadline), so an endless
//! recursion without a LIMIT ends with a resource error, the same on every replica.
//! Determinism: runs and rows follow their order; the set of seen rows (UNION) is only
//! looked up.

use super::Rows;
use super::executor::execute_node;
use crate::sql::engine::Txn;
use crate::sql::planner::Node;
use crate::sql::types::Row;
use std::collections::HashSet;

/// Yields `initial`'s rows, then those of `step` (reading working table `id`) run on the
/// previous run's new rows, until a run yields no new row. With `distinct`, a row already
/// yielded is dropped.
pub fn recursive<'a>(
    initial: Rows<'a>,
    step: Node,
    id: usize,
    distinct: bool,
    txn: &'a Txn,
) -> Rows<'a> {
    let mut seen: HashSet<Row> = HashSet::new();
    let mut run: Option<Rows<'a>> = Some(initial);
    let mut produced: Vec<Row> = Vec::new();
    Box::new(std::iter::from_fn(move || {
        loop {
            if let Some(rows) = run.as_mut() {
                match rows.next() {
                    Some(Ok(row)) => {
                        if distinct && seen.contains(&row) {
                            continue;
                        }
                        if let Err(error) = txn.budget().hold(&row) {
                            run = None;
                            produced.clear();
                            return Some(Err(error));
                        }
                        if distinct {
                            seen.insert(row.clone());
                        }
                        produced.push(row.clone());
                        return Some(Ok(row));
                    }
                    Some(Err(error)) => {
                        run = None;
                        produced.clear();
                        return Some(Err(error));
                    }
                    None => run = None,
                }
            }
            if produced.is_empty() {
                return None;
            }
            let last = std::mem::take(&mut produced);
            let next = txn
                .budget()
                .tick()
                .and_then(|()| execute_node(step.clone().bind_working(id, &last), txn));
            match next {
                Ok(rows) => run = Some(rows),
                Err(error) => return Some(Err(error)),
            }
        }
    }))
}
