//! Join order. A run of inner joins (comma joins, `[INNER] JOIN`, `CROSS JOIN`) in the written
//! order may join two tables that no condition links, a cross product, before the condition
//! that would link them comes into reach: eight 10-row tables so written make 10^8 rows. When
//! that is so, the run is reordered so that each table joins the tables before it through an
//! equality of columns where one exists (the first table being one that a condition pins to a
//! constant, if any), and the equalities then become hash joins (`optimizer.rs`). A projection
//! on top restores the written column order, so the result is the same set of rows; a run that
//! has no such cross product keeps its order, and its rows theirs.
//!
//! The order depends only on the query's text, so every replica plans the same.

use super::optimizer::{column_types, conjuncts, map_children};
use super::plan::{Expression, Node};
use crate::sql::engine::{Statistics, Table};
use crate::sql::parser::ast::BinaryOp;

/// The most tables a run may have to be reordered.
const MAX_REORDERED: usize = 64;

/// Reorders the runs of inner joins in `node` (see the module docs).
pub fn reorder(node: Node) -> Node {
    match node {
        Node::Filter { source, predicate } if is_inner_join(&source) => {
            reorder_run(*source, Some(predicate))
        }
        node if is_inner_join(&node) => reorder_run(node, None),
        other => map_children(other, &reorder),
    }
}

fn is_inner_join(node: &Node) -> bool {
    matches!(node, Node::NestedLoopJoin { outer: false, .. })
}

/// A joined input of a run: anything but an inner join.
struct Leaf {
    /// Where its columns start in the run's row, as written.
    offset: usize,
    width: usize,
    /// What ANALYZE measured, or what the row count the engine keeps suggests, for a table
    /// read whole or in part.
    statistics: Option<Statistics>,
}

/// The inputs of a run of inner joins, in written order, and the conditions on them (with
/// columns of the run's row). Returns the width of `node`'s row.
fn shape(
    node: &Node,
    offset: usize,
    leaves: &mut Vec<Leaf>,
    conditions: &mut Vec<Expression>,
) -> usize {
    match node {
        Node::NestedLoopJoin { left, right, predicate, outer: false, .. } => {
            let left_width = shape(left, offset, leaves, conditions);
            if let Some(predicate) = predicate {
                let mut parts = Vec::new();
                conjuncts(predicate.clone(), &mut parts);
                conditions.extend(parts.into_iter().map(|p| p.map_columns(&|c| c + offset)));
            }
            left_width + shape(right, offset + left_width, leaves, conditions)
        }
        other => {
            let width = column_types(other).len();
            let statistics = match other {
                Node::Scan { table, .. } => estimate(table),
                _ => None,
            };
            leaves.push(Leaf { offset, width, statistics });
            width
        }
    }
}

/// The inputs of a run, in written order, each reordered inside.
fn inputs(node: Node, out: &mut Vec<Node>) {
    match node {
        Node::NestedLoopJoin { left, right, outer: false, .. } => {
            inputs(*left, out);
            inputs(*right, out);
        }
        other => out.push(reorder(other)),
    }
}

/// A run in its written shape, with its inputs reordered inside.
fn keep_order(node: Node) -> Node {
    match node {
        Node::NestedLoopJoin { left, right, right_width, predicate, outer: false } => {
            Node::NestedLoopJoin {
                left: Box::new(keep_order(*left)),
                right: Box::new(keep_order(*right)),
                right_width,
                predicate,
                outer: false,
            }
        }
        other => reorder(other),
    }
}

/// A name for column `i` of an input, for EXPLAIN.
fn column_name(node: &Node, i: usize) -> String {
    match node {
        Node::Scan { table, alias, .. } => match table.columns.get(i) {
            Some(column) => format!("{}.{}", alias.as_deref().unwrap_or(&table.name), column.name),
            None => format!("#{i}"),
        },
        _ => format!("#{i}"),
    }
}

/// The leaves a condition reads.
fn leaves_of(condition: &Expression, leaves: &[Leaf]) -> Vec<usize> {
    let mut found: Vec<usize> = condition
        .columns()
        .into_iter()
        .filter_map(|c| leaves.iter().position(|l| c >= l.offset && c < l.offset + l.width))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// The two leaves an equality of columns links, if it is one.
fn link(condition: &Expression, leaves: &[Leaf]) -> Option<(usize, usize)> {
    let Expression::Binary(BinaryOp::Equal, a, b) = condition else { return None };
    let (Expression::Column(..), Expression::Column(..)) = (a.as_ref(), b.as_ref()) else {
        return None;
    };
    match leaves_of(condition, leaves).as_slice() {
        [x, y] => Some((*x, *y)),
        _ => None,
    }
}

/// Whether a condition pins a leaf's column to a constant (`col = constant`).
fn pins(condition: &Expression) -> bool {
    pinned_column(condition).is_some()
}

fn reorder_run(run: Node, filter: Option<Expression>) -> Node {
    let (mut leaves, mut conditions) = (Vec::new(), Vec::new());
    let width = shape(&run, 0, &mut leaves, &mut conditions);
    if let Some(filter) = &filter {
        conjuncts(filter.clone(), &mut conditions);
    }
    let links: Vec<(usize, usize)> = conditions.iter().filter_map(|c| link(c, &leaves)).collect();
    let linked = |leaf: usize, joined: &[usize]| {
        links
            .iter()
            .any(|&(a, b)| (a == leaf && joined.contains(&b)) || (b == leaf && joined.contains(&a)))
    };
    // With statistics for every table, the order the cost model estimates cheapest.
    if leaves.len() <= MAX_REORDERED
        && let Some(order) = cheapest_order(&leaves, &conditions)
    {
        return if order.iter().copied().eq(0..leaves.len()) {
            let run = keep_order(run);
            match filter {
                Some(predicate) => Node::Filter { source: Box::new(run), predicate },
                None => run,
            }
        } else {
            join_in_order(run, &order, leaves, conditions, width)
        };
    }
    // The written order stays unless a table some condition links comes after a cross product.
    let written: Vec<usize> = (0..leaves.len()).collect();
    // Past a few dozen tables the search itself would cost more than it saves.
    let cross_first = leaves.len() <= MAX_REORDERED
        && (1..leaves.len()).any(|i| {
            !linked(i, &written[..i]) && (i + 1..leaves.len()).any(|j| linked(j, &written[..j]))
        });
    if !cross_first {
        let run = keep_order(run);
        return match filter {
            Some(predicate) => Node::Filter { source: Box::new(run), predicate },
            None => run,
        };
    }
    let pinned =
        |leaf: usize| conditions.iter().any(|c| pins(c) && leaves_of(c, &leaves) == [leaf]);
    let first = (0..leaves.len()).find(|&l| pinned(l)).unwrap_or(0);
    let mut order = vec![first];
    while order.len() < leaves.len() {
        let remaining: Vec<usize> = (0..leaves.len()).filter(|l| !order.contains(l)).collect();
        let next = remaining.iter().copied().find(|&l| linked(l, &order)).unwrap_or(remaining[0]);
        order.push(next);
    }
    join_in_order(run, &order, leaves, conditions, width)
}

/// The run's inputs joined in `order`, under its conditions, with a projection restoring the
/// written column order.
fn join_in_order(
    run: Node,
    order: &[usize],
    leaves: Vec<Leaf>,
    conditions: Vec<Expression>,
    width: usize,
) -> Node {
    // Where each input's columns start in the new row.
    let mut starts = vec![0; leaves.len()];
    let mut at = 0;
    for &leaf in order {
        starts[leaf] = at;
        at += leaves[leaf].width;
    }
    let position = |c: usize| {
        let leaf = leaves.iter().position(|l| c >= l.offset && c < l.offset + l.width);
        leaf.map_or(c, |l| starts[l] + c - leaves[l].offset)
    };
    let mut nodes = Vec::new();
    inputs(run, &mut nodes);
    let names: Vec<String> = leaves
        .iter()
        .zip(&nodes)
        .flat_map(|(leaf, node)| (0..leaf.width).map(|i| column_name(node, i)))
        .collect();
    let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    let mut joined: Option<Node> = None;
    for &leaf in order {
        let Some(input) = slots[leaf].take() else { continue };
        joined = Some(match joined {
            None => input,
            Some(left) => Node::NestedLoopJoin {
                left: Box::new(left),
                right: Box::new(input),
                right_width: leaves[leaf].width,
                predicate: None,
                outer: false,
            },
        });
    }
    let Some(mut node) = joined else { return Node::Values { rows: vec![Vec::new()] } };
    let conditions = conditions.into_iter().map(|c| c.map_columns(&position));
    if let Some(predicate) =
        conditions.reduce(|a, b| Expression::Binary(BinaryOp::And, Box::new(a), Box::new(b)))
    {
        node = Node::Filter { source: Box::new(node), predicate };
    }
    let expressions =
        (0..width).map(|c| Expression::Column(position(c), names[c].clone())).collect();
    Node::Projection { source: Box::new(node), expressions }
}

/// The selectivity guessed for a condition on one table that is not an equality to a constant.
const OTHER_CONDITION: f64 = 1.0 / 3.0;

/// With statistics for every input, the join order a greedy cost model finds cheapest: the
/// input with the fewest estimated rows first, then each time the input that makes the
/// smallest estimated result (an equality of columns keeps 1 / the larger number of distinct
/// values of the pair; ties go to the written order). `None` without statistics.
fn cheapest_order(leaves: &[Leaf], conditions: &[Expression]) -> Option<Vec<usize>> {
    let statistics: Vec<&Statistics> =
        leaves.iter().map(|l| l.statistics.as_ref()).collect::<Option<_>>()?;
    let distinct = |column: usize| -> f64 {
        let leaf = leaves.iter().position(|l| column >= l.offset && column < l.offset + l.width);
        let count = leaf.and_then(|l| statistics[l].distinct.get(column - leaves[l].offset));
        count.copied().unwrap_or(1).max(1) as f64
    };
    // Each input's rows after the conditions on it alone.
    let rows: Vec<f64> = (0..leaves.len())
        .map(|leaf| {
            let own = conditions.iter().filter(|c| leaves_of(c, leaves) == [leaf]);
            own.fold(statistics[leaf].rows.max(1) as f64, |rows, condition| {
                match pinned_column(condition) {
                    Some(column) => rows / distinct(column),
                    None => rows * OTHER_CONDITION,
                }
            })
        })
        .collect();
    // The equalities linking two inputs: (leaf, leaf, selectivity).
    let links: Vec<(usize, usize, f64)> = conditions
        .iter()
        .filter_map(|condition| {
            let (a, b) = link(condition, leaves)?;
            let columns = condition.columns();
            let larger = columns.iter().map(|c| distinct(*c)).fold(1.0, f64::max);
            Some((a, b, 1.0 / larger))
        })
        .collect();
    let first = (0..leaves.len()).min_by(|a, b| rows[*a].total_cmp(&rows[*b]))?;
    let (mut order, mut size) = (vec![first], rows[first]);
    while order.len() < leaves.len() {
        let estimate = |leaf: usize| {
            let kept = links
                .iter()
                .filter(|(a, b, _)| {
                    (*a == leaf && order.contains(b)) || (*b == leaf && order.contains(a))
                })
                .fold(1.0, |kept, (.., selectivity)| kept * selectivity);
            size * rows[leaf] * kept
        };
        let next = (0..leaves.len())
            .filter(|leaf| !order.contains(leaf))
            .min_by(|a, b| estimate(*a).total_cmp(&estimate(*b)))?;
        size = estimate(next);
        order.push(next);
    }
    Some(order)
}

/// A table's statistics: ANALYZE's, or else a guess from the row count the engine keeps
/// (a key or unique column has a distinct value per row, another one per ten rows).
fn estimate(table: &Table) -> Option<Statistics> {
    if let Some(statistics) = &table.statistics {
        return Some(statistics.as_ref().clone());
    }
    let rows = *table.live_rows.as_deref()?;
    let distinct = (0..table.columns.len())
        .map(|column| {
            let unique = table.primary_key == Some(column)
                || table.indexes.iter().any(|i| i.unique && i.columns == [column]);
            if unique { rows } else { (rows / 10).max(1) }
        })
        .collect();
    Some(Statistics { rows, distinct })
}

/// The column a condition pins to a constant (`col = constant`), if it does.
fn pinned_column(condition: &Expression) -> Option<usize> {
    let Expression::Binary(BinaryOp::Equal, a, b) = condition else { return None };
    match (a.as_ref(), b.as_ref()) {
        (Expression::Column(c, _), Expression::Constant(_))
        | (Expression::Constant(_), Expression::Column(c, _)) => Some(*c),
        _ => None,
    }
}
