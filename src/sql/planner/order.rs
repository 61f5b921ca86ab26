//! ORDER BY served by the order rows are read in. A scan reads a table in primary-key order,
//! and an index lookup or index scan reads in the index's order (NULLs first, as Chronos sorts
//! ascending), so a sort of a plain query on such columns, ascending, is dropped; columns an
//! equality pins may be skipped. A descending ORDER BY (NULLs last) of an index's columns or
//! the key reads the index or the key range backwards (a lookup of one list of values becomes
//! a backward scan of the entries starting with it: `WHERE device = 5 ORDER BY ts DESC LIMIT
//! 1` reads one entry). A full scan whose ORDER BY an index's leading columns give
//! reads through that index instead: rows stream in order rather than being sorted in memory,
//! and a LIMIT above stops the read early. Rows equal on the ORDER BY may then come in another
//! order than the sort gave (the index's later columns', then the row key's), which SQL leaves
//! open (SQLite does the same); every replica plans, hence orders, alike.

use super::optimizer::map_children;
use super::plan::{Access, Expression, Node, SortKey};
use crate::sql::engine::Table;
use std::ops::Bound;

/// Drops the sorts the reads below them already give (see the module docs).
pub fn serve_order(node: Node) -> Node {
    match map_children(node, &serve_order) {
        Node::Order { source, keys } => match scan_order(&source, &keys) {
            Some(Served::Already) => *source,
            Some(Served::Through(access)) => with_access(*source, access),
            None => Node::Order { source, keys },
        },
        other => other,
    }
}

/// How a sort is served.
enum Served {
    /// The scan reads in that order already.
    Already,
    /// The scan would, through this access.
    Through(Access),
}

/// Whether `source` (a projection of a scan) yields its rows ordered by `keys`.
fn scan_order(source: &Node, keys: &[SortKey]) -> Option<Served> {
    let Node::Projection { source: scan, expressions } = source else { return None };
    let Node::Scan { table, access, .. } = scan.as_ref() else { return None };
    // Ascending with NULLs first is index order; descending with NULLs last, its reverse.
    let reverse = keys.first().is_some_and(|key| key.descending);
    let mut wanted = Vec::new();
    for key in keys {
        if key.descending != reverse || key.nulls_first == reverse {
            return None;
        }
        let Expression::Column(position, _) = &key.expr else { return None };
        let Some(Expression::Column(column, _)) = expressions.get(*position) else { return None };
        if !wanted.contains(column) {
            wanted.push(*column);
        }
    }
    let (delivered, pinned) = delivered(table, access);
    if follows(&wanted, &delivered, &pinned) {
        if !reverse || wanted.iter().all(|c| pinned.contains(c)) {
            return Some(Served::Already);
        }
        // Key ranges and index scans read backwards, and so does an index lookup of one list
        // of values, as a scan of the entries that start with it (key lookups and lookups of
        // several lists do not).
        return match access {
            Access::Index { index, values } if values.len() == 1 => {
                Some(Served::Through(Access::IndexScan {
                    index: index.clone(),
                    prefix: values[0].clone(),
                    range: None,
                    reverse: true,
                }))
            }
            Access::Full => {
                Some(Served::Through(Access::KeyRangeBackward(Bound::Unbounded, Bound::Unbounded)))
            }
            Access::KeyRange(start, end) => {
                Some(Served::Through(Access::KeyRangeBackward(start.clone(), end.clone())))
            }
            Access::IndexScan { index, prefix, range, reverse: false } => {
                Some(Served::Through(Access::IndexScan {
                    index: index.clone(),
                    prefix: prefix.clone(),
                    range: range.clone(),
                    reverse: true,
                }))
            }
            _ => None,
        };
    }
    if *access != Access::Full {
        return None;
    }
    let index = table.indexes.iter().find(|index| follows(&wanted, &index.columns, &[]))?;
    Some(Served::Through(Access::IndexScan {
        index: index.clone(),
        prefix: Vec::new(),
        range: None,
        reverse,
    }))
}

/// The columns a scan's rows come ordered by, and those it pins to one value.
fn delivered(table: &Table, access: &Access) -> (Vec<usize>, Vec<usize>) {
    match access {
        Access::Full | Access::KeyRange(..) | Access::Keys(_) => {
            (table.primary_key.into_iter().collect(), Vec::new())
        }
        Access::KeyRangeBackward(..) => (Vec::new(), Vec::new()),
        Access::Index { index, values } => {
            let pinned = match values.as_slice() {
                [one] => index.columns[..one.len().min(index.columns.len())].to_vec(),
                _ => Vec::new(),
            };
            (index.columns.clone(), pinned)
        }
        Access::IndexScan { index, prefix, .. } => {
            (index.columns.clone(), index.columns[..prefix.len().min(index.columns.len())].to_vec())
        }
    }
}

/// Whether rows ordered by `delivered` (with `pinned` columns constant) are ordered by
/// `wanted`: leaving out the pinned columns, `wanted` starts `delivered`.
fn follows(wanted: &[usize], delivered: &[usize], pinned: &[usize]) -> bool {
    let wanted: Vec<usize> = wanted.iter().copied().filter(|c| !pinned.contains(c)).collect();
    let delivered: Vec<usize> = delivered.iter().copied().filter(|c| !pinned.contains(c)).collect();
    wanted.is_empty() || delivered.starts_with(&wanted)
}

/// `source` (a projection of a scan) with the scan's access replaced.
fn with_access(source: Node, access: Access) -> Node {
    match source {
        Node::Projection { source, expressions } => match *source {
            Node::Scan { table, alias, filter, with_key, .. } => Node::Projection {
                source: Box::new(Node::Scan { table, alias, access, filter, with_key }),
                expressions,
            },
            other => Node::Projection { source: Box::new(other), expressions },
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::follows;

    #[test]
    fn an_order_follows_when_it_starts_the_delivered_one_less_pinned_columns() {
        assert!(follows(&[0], &[0, 1], &[]));
        assert!(follows(&[1], &[0, 1], &[0]));
        assert!(follows(&[0, 1], &[0, 1], &[0]));
        assert!(!follows(&[1], &[0, 1], &[]));
        assert!(!follows(&[1, 0], &[0, 1], &[]));
        assert!(!follows(&[2], &[], &[]));
    }
}
