//! Plan rewrites that keep results identical and make them cheaper:
//!
//! 1. Runs of inner joins that would make a cross product before a linking condition are
//!    reordered (`join_order.rs`); filters are pushed down into scans and through joins (not
//!    across the null-padded side of a LEFT JOIN).
//! 2. Scans with a filter use the primary key (equality and IN become key lookups, ranges
//!    become range scans) or a secondary index (equality and IN), and drop the conjuncts the
//!    access path answers exactly.
//! 3. Inner joins on an equality of two columns of compatible types become hash joins.
//! 4. A sort the scan below already gives (key or index order) is dropped (`order.rs`).
//!
//! Lookups only use constants of the column's type (integers and floats convert exactly);
//! anything else stays a filter, so type errors are reported as without the optimization.

use super::expression::infer_type;
use super::plan::{Access, AggregateFunction, ApplyKind, Expression, Node, Plan};
use crate::sql::engine::{Index, Table};
use crate::sql::parser::ast::BinaryOp;
use crate::sql::types::{DataType, Value};
use std::ops::Bound;

/// Optimizes a plan.
pub fn optimize(plan: Plan) -> Plan {
    match plan {
        Plan::Select { root, columns } => Plan::Select { root: optimize_node(root), columns },
        Plan::Insert { table, columns, source, conflict, returning } => {
            Plan::Insert { table, columns, source: optimize_node(source), conflict, returning }
        }
        Plan::Update { table, source, set, returning } => {
            Plan::Update { table, source: optimize_node(source), set, returning }
        }
        Plan::Delete { table, source, returning } => {
            Plan::Delete { table, source: optimize_node(source), returning }
        }
        other => other,
    }
}

fn optimize_node(node: Node) -> Node {
    super::order::serve_order(choose_access(push_down(super::join_order::reorder(node))))
}

/// Optimizes a query tree (a correlated subquery once bound to a row: its outer references
/// are now constants, so keys and indexes may serve them).
pub fn optimize_query(node: Node) -> Node {
    optimize_node(node)
}

/// Splits an expression into its AND-ed conjuncts.
pub(super) fn conjuncts(expr: Expression, out: &mut Vec<Expression>) {
    crate::sql::with_stack(|| match expr {
        Expression::Binary(BinaryOp::And, a, b) => {
            conjuncts(*a, out);
            conjuncts(*b, out);
        }
        other => out.push(other),
    })
}

/// ANDs expressions together; `None` for none.
pub(super) fn and_all(exprs: Vec<Expression>) -> Option<Expression> {
    exprs.into_iter().reduce(|a, b| Expression::Binary(BinaryOp::And, Box::new(a), Box::new(b)))
}

fn and(a: Option<Expression>, b: Option<Expression>) -> Option<Expression> {
    and_all(a.into_iter().chain(b).collect())
}

/// The types of a node's output columns (their count is the node's width).
pub fn column_types(node: &Node) -> Vec<Option<DataType>> {
    match node {
        Node::Scan { table, with_key, .. } => {
            let mut types: Vec<_> = table.columns.iter().map(|c| Some(c.datatype)).collect();
            if *with_key {
                types.push(Some(
                    table.primary_key.map_or(DataType::Integer, |k| table.columns[k].datatype),
                ));
            }
            types
        }
        Node::Filter { source, .. }
        | Node::Order { source, .. }
        | Node::Offset { source, .. }
        | Node::Limit { source, .. }
        | Node::Distinct { source } => column_types(source),
        Node::Projection { source, expressions } => {
            let input = column_types(source);
            expressions
                .iter()
                .map(|e| infer_type(e, &|i| input.get(i).copied().flatten()))
                .collect()
        }
        Node::Aggregate { source, group_by, aggregates } => {
            let input = column_types(source);
            let input = |i: usize| input.get(i).copied().flatten();
            group_by
                .iter()
                .map(|g| infer_type(g, &input))
                .chain(aggregates.iter().map(|a| match a.function {
                    AggregateFunction::Count => Some(DataType::Integer),
                    AggregateFunction::Avg => Some(DataType::Float),
                    AggregateFunction::GroupConcat => Some(DataType::String),
                    _ => a.arg.as_ref().and_then(|arg| infer_type(arg, &input)),
                }))
                .collect()
        }
        Node::Window { source, functions } => {
            let mut types = column_types(source);
            let input = types.clone();
            let input = |i: usize| input.get(i).copied().flatten();
            types.extend(functions.iter().map(|w| w.datatype(&input)));
            types
        }
        Node::SetOperation { left, .. } | Node::SemiJoin { left, .. } => column_types(left),
        Node::Recursive { initial, .. } => column_types(initial),
        Node::WorkingTable { types, .. } => types.clone(),
        Node::Apply { source, subquery, kind, .. } => {
            let mut types = column_types(source);
            types.push(match kind {
                ApplyKind::Value => column_types(subquery).first().copied().flatten(),
                ApplyKind::Exists | ApplyKind::In { .. } => Some(DataType::Boolean),
            });
            types
        }
        Node::NestedLoopJoin { left, right, .. } | Node::HashJoin { left, right, .. } => {
            let mut types = column_types(left);
            types.extend(column_types(right));
            types
        }
        Node::Series { start, .. } => vec![start.datatype()],
        Node::Values { rows } => rows
            .first()
            .map(|row| row.iter().map(|e| infer_type(e, &|_| None)).collect())
            .unwrap_or_default(),
    }
}

/// Pushes filters as far down as they go.
fn push_down(node: Node) -> Node {
    match node {
        Node::Filter { source, predicate } => push_predicate(push_down(*source), predicate),
        Node::NestedLoopJoin { left, right, right_width, predicate, outer } => {
            let (left, right) = (push_down(*left), push_down(*right));
            let left_width = column_types(&left).len();
            let (mut to_left, mut to_right, mut keep) = (Vec::new(), Vec::new(), Vec::new());
            let mut parts = Vec::new();
            if let Some(predicate) = predicate {
                conjuncts(predicate, &mut parts);
            }
            for part in parts {
                let columns = part.columns();
                if !columns.is_empty() && columns.iter().all(|c| *c >= left_width) {
                    // Conditions on the right side only filter right rows, also for LEFT JOIN.
                    to_right.push(part.map_columns(&|c| c - left_width));
                } else if !outer && columns.iter().all(|c| *c < left_width) {
                    to_left.push(part);
                } else {
                    keep.push(part);
                }
            }
            let left = push_into(left, and_all(to_left));
            let right = push_into(right, and_all(to_right));
            Node::NestedLoopJoin {
                left: Box::new(left),
                right: Box::new(right),
                right_width,
                predicate: and_all(keep),
                outer,
            }
        }
        other => map_children(other, &push_down),
    }
}

/// Merges a predicate into a node, pushing it down where that keeps the result the same.
fn push_predicate(node: Node, predicate: Expression) -> Node {
    match node {
        Node::Scan { table, alias, access, filter, with_key } => {
            Node::Scan { table, alias, access, filter: and(filter, Some(predicate)), with_key }
        }
        Node::NestedLoopJoin { left, right, right_width, predicate: on, outer } => {
            let left_width = column_types(&left).len();
            let mut parts = Vec::new();
            conjuncts(predicate, &mut parts);
            let (mut to_left, mut to_right, mut keep) = (Vec::new(), Vec::new(), Vec::new());
            for part in parts {
                let columns = part.columns();
                if columns.iter().all(|c| *c < left_width) {
                    to_left.push(part);
                } else if !outer && columns.iter().all(|c| *c >= left_width) {
                    to_right.push(part.map_columns(&|c| c - left_width));
                } else {
                    keep.push(part);
                }
            }
            let left = push_into(*left, and_all(to_left));
            let right = push_into(*right, and_all(to_right));
            if outer {
                // WHERE conditions on the padded side must see the padding: keep them above.
                let join = Node::NestedLoopJoin {
                    left: Box::new(left),
                    right: Box::new(right),
                    right_width,
                    predicate: on,
                    outer,
                };
                filter_above(join, and_all(keep))
            } else {
                let predicate = and(on, and_all(keep));
                Node::NestedLoopJoin {
                    left: Box::new(left),
                    right: Box::new(right),
                    right_width,
                    predicate,
                    outer,
                }
            }
        }
        Node::Apply { source, subquery, params, kind, label } => {
            // Conditions on the input's columns go below: fewer rows run the subquery.
            let width = column_types(&source).len();
            let mut parts = Vec::new();
            conjuncts(predicate, &mut parts);
            let (below, keep): (Vec<_>, Vec<_>) =
                parts.into_iter().partition(|part| part.columns().iter().all(|c| *c < width));
            let source = push_into(*source, and_all(below));
            let apply = Node::Apply { source: Box::new(source), subquery, params, kind, label };
            filter_above(apply, and_all(keep))
        }
        Node::SemiJoin { left, left_keys, right, anti, label } => Node::SemiJoin {
            left: Box::new(push_predicate(*left, predicate)),
            left_keys,
            right,
            anti,
            label,
        },
        Node::Filter { source, predicate: inner } => push_predicate(
            *source,
            Expression::Binary(BinaryOp::And, Box::new(inner), Box::new(predicate)),
        ),
        // Conditions on columns a projection passes through go below it (a view's or a
        // derived table's), where a key or index may serve them.
        Node::Projection { source, expressions } => {
            let (below, keep) = split_conjuncts(predicate, &|part| {
                let passed =
                    |c: &usize| matches!(expressions.get(*c), Some(Expression::Column(..)));
                part.columns()
                    .iter()
                    .all(passed)
                    .then(|| part.clone().substitute_columns(&|c| expressions.get(c).cloned()))
            });
            let source = push_into(*source, below);
            filter_above(Node::Projection { source: Box::new(source), expressions }, keep)
        }
        // Conditions on columns every window partitions by filter the input rows instead: whole
        // partitions go, and the others' windows are unchanged.
        Node::Window { source, functions } => {
            let width = column_types(&source).len();
            let partitioned = |c: &usize| {
                *c < width
                    && functions.iter().all(|w| {
                        w.partition_by
                            .iter()
                            .any(|e| matches!(e, Expression::Column(i, _) if i == c))
                    })
            };
            let (below, keep) = split_conjuncts(predicate, &|part| {
                let columns = part.columns();
                (!columns.is_empty() && columns.iter().all(partitioned)).then(|| part.clone())
            });
            let source = push_into(*source, below);
            filter_above(Node::Window { source: Box::new(source), functions }, keep)
        }
        // Conditions on plain group columns filter the input rows instead: the same groups
        // go, and fewer rows are grouped (a constant condition stays above: with no GROUP BY
        // an empty input still makes one group).
        Node::Aggregate { source, group_by, aggregates } => {
            let (below, keep) = split_conjuncts(predicate, &|part| {
                let columns = part.columns();
                let grouped = |c: &usize| matches!(group_by.get(*c), Some(Expression::Column(..)));
                (!columns.is_empty() && columns.iter().all(grouped))
                    .then(|| part.clone().substitute_columns(&|c| group_by.get(c).cloned()))
            });
            let source = push_into(*source, below);
            filter_above(Node::Aggregate { source: Box::new(source), group_by, aggregates }, keep)
        }
        other => Node::Filter { source: Box::new(other), predicate },
    }
}

/// Splits `predicate` into its conjuncts that `lower` can move below a node (rewritten for
/// the node's input) and those that stay above it.
fn split_conjuncts(
    predicate: Expression,
    lower: &dyn Fn(&Expression) -> Option<Expression>,
) -> (Option<Expression>, Option<Expression>) {
    let mut parts = Vec::new();
    conjuncts(predicate, &mut parts);
    let (mut below, mut keep) = (Vec::new(), Vec::new());
    for part in parts {
        match lower(&part) {
            Some(lowered) => below.push(lowered),
            None => keep.push(part),
        }
    }
    (and_all(below), and_all(keep))
}

/// `node` with `predicate` pushed into it, if any.
fn push_into(node: Node, predicate: Option<Expression>) -> Node {
    match predicate {
        Some(predicate) => push_predicate(node, predicate),
        None => node,
    }
}

/// `node` under the conditions that stay above it, if any.
fn filter_above(node: Node, predicate: Option<Expression>) -> Node {
    match predicate {
        Some(predicate) => Node::Filter { source: Box::new(node), predicate },
        None => node,
    }
}

/// Applies `f` to each child of a node.
pub(super) fn map_children(node: Node, f: &dyn Fn(Node) -> Node) -> Node {
    let b = |n: Box<Node>| Box::new(f(*n));
    match node {
        Node::Filter { source, predicate } => Node::Filter { source: b(source), predicate },
        Node::Projection { source, expressions } => {
            Node::Projection { source: b(source), expressions }
        }
        Node::Aggregate { source, group_by, aggregates } => {
            Node::Aggregate { source: b(source), group_by, aggregates }
        }
        Node::Order { source, keys } => Node::Order { source: b(source), keys },
        Node::Window { source, functions } => Node::Window { source: b(source), functions },
        Node::Offset { source, offset } => Node::Offset { source: b(source), offset },
        Node::Limit { source, limit } => Node::Limit { source: b(source), limit },
        Node::Distinct { source } => Node::Distinct { source: b(source) },
        Node::NestedLoopJoin { left, right, right_width, predicate, outer } => {
            Node::NestedLoopJoin { left: b(left), right: b(right), right_width, predicate, outer }
        }
        Node::HashJoin { left, left_column, right, right_column, right_width, outer } => {
            Node::HashJoin {
                left: b(left),
                left_column,
                right: b(right),
                right_column,
                right_width,
                outer,
            }
        }
        Node::SetOperation { op, left, right } => {
            Node::SetOperation { op, left: b(left), right: b(right) }
        }
        // The subquery stays as planned: it is optimized once bound to a row.
        Node::Apply { source, subquery, params, kind, label } => {
            Node::Apply { source: b(source), subquery, params, kind, label }
        }
        Node::SemiJoin { left, left_keys, right, anti, label } => {
            Node::SemiJoin { left: b(left), left_keys, right: b(right), anti, label }
        }
        Node::Recursive { name, initial, step, id, distinct } => {
            Node::Recursive { name, initial: b(initial), step: b(step), id, distinct }
        }
        leaf @ (Node::Scan { .. }
        | Node::Values { .. }
        | Node::Series { .. }
        | Node::WorkingTable { .. }) => leaf,
    }
}

/// Picks access paths for scans and algorithms for joins, bottom-up.
fn choose_access(node: Node) -> Node {
    match map_children(node, &choose_access) {
        Node::Scan { table, alias, access: Access::Full, filter: Some(filter), with_key } => {
            let (access, filter) = scan_access(&table, filter);
            Node::Scan { table, alias, access, filter, with_key }
        }
        Node::NestedLoopJoin { left, right, right_width, predicate: Some(predicate), outer } => {
            hash_join(*left, *right, right_width, predicate, outer)
        }
        other => other,
    }
}

/// Turns a join on `left.a = right.b` (types compatible) into a hash join.
fn hash_join(
    left: Node,
    right: Node,
    right_width: usize,
    predicate: Expression,
    outer: bool,
) -> Node {
    let left_types = column_types(&left);
    let right_types = column_types(&right);
    let left_width = left_types.len();
    let mut parts = Vec::new();
    conjuncts(predicate, &mut parts);
    let equi = parts.iter().position(|part| {
        let Expression::Binary(BinaryOp::Equal, a, b) = part else { return false };
        let (Expression::Column(a, _), Expression::Column(b, _)) = (a.as_ref(), b.as_ref()) else {
            return false;
        };
        let (l, r) = if a < b { (*a, *b) } else { (*b, *a) };
        l < left_width && r >= left_width && compatible(left_types[l], right_types[r - left_width])
    });
    // A LEFT JOIN can only hash on its whole condition: extra conditions decide the padding.
    let Some(position) = equi.filter(|_| !outer || parts.len() == 1) else {
        return Node::NestedLoopJoin {
            left: Box::new(left),
            right: Box::new(right),
            right_width,
            predicate: and_all(parts),
            outer,
        };
    };
    let part = parts.remove(position);
    let Expression::Binary(_, a, b) = part else { unreachable!("checked above") };
    let (Expression::Column(a, _), Expression::Column(b, _)) = (*a, *b) else {
        unreachable!("checked above")
    };
    let (left_column, right_column) = if a < b { (a, b - left_width) } else { (b, a - left_width) };
    let join = Node::HashJoin {
        left: Box::new(left),
        left_column,
        right: Box::new(right),
        right_column,
        right_width,
        outer,
    };
    match and_all(parts) {
        Some(rest) => Node::Filter { source: Box::new(join), predicate: rest },
        None => join,
    }
}

/// Whether two column types compare without a type error (so hashing agrees with `=`).
pub(super) fn compatible(a: Option<DataType>, b: Option<DataType>) -> bool {
    use DataType::*;
    match (a, b) {
        (Some(a), Some(b)) => a == b || matches!((a, b), (Integer, Float) | (Float, Integer)),
        _ => false,
    }
}

/// Converts lookup constants to a column's type. `None` if one cannot compare without a type
/// error; values that can never be equal (NULL, 1.5 for an integer) are dropped.
fn lookup_values(values: Vec<Value>, datatype: DataType) -> Option<Vec<Value>> {
    let mut out = Vec::new();
    for value in values {
        match (value, datatype) {
            (Value::Null, _) => {}
            (Value::Integer(i), DataType::Float) => out.push(Value::Float(i as f64)),
            // '2024-05-01' against a TIMESTAMP column is that timestamp (text that does not
            // parse is left to the filter, which reports it).
            (Value::String(s), DataType::Timestamp | DataType::Interval) => {
                out.push(Value::String(s).cast(datatype).ok()?)
            }
            (Value::Float(f), DataType::Integer) => {
                if f.fract() == 0.0 && (-9.2e18..9.2e18).contains(&f) {
                    out.push(Value::Integer(f as i64));
                }
            }
            (value, datatype) if value.datatype() == Some(datatype) => out.push(value),
            _ => return None,
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// `column = constant` or `column IN (constants)`: the column and the constants.
fn equality(expr: &Expression) -> Option<(usize, Vec<Value>)> {
    match expr {
        Expression::Binary(BinaryOp::Equal, a, b) => match (a.as_ref(), b.as_ref()) {
            (Expression::Column(i, _), Expression::Constant(v))
            | (Expression::Constant(v), Expression::Column(i, _)) => Some((*i, vec![v.clone()])),
            _ => None,
        },
        Expression::InList(e, list, false) => {
            let Expression::Column(i, _) = e.as_ref() else { return None };
            let values = list.iter().map(|item| match item {
                Expression::Constant(v) => Some(v.clone()),
                _ => None,
            });
            Some((*i, values.collect::<Option<_>>()?))
        }
        _ => None,
    }
}

/// A range condition on `column`: `(column, lower, upper)`.
fn range(
    expr: &Expression,
    column: usize,
    datatype: DataType,
) -> Option<(Bound<Value>, Bound<Value>)> {
    let exact = |v: &Value| -> Option<Value> {
        match (v, datatype) {
            (Value::Integer(i), DataType::Float) => Some(Value::Float(*i as f64)),
            (Value::String(_), DataType::Timestamp | DataType::Interval) => v.cast(datatype).ok(),
            (v, t) if v.datatype() == Some(t) => Some(v.clone()),
            _ => None,
        }
    };
    match expr {
        Expression::Binary(op, a, b) => {
            let (op, value) = match (a.as_ref(), b.as_ref()) {
                (Expression::Column(i, _), Expression::Constant(v)) if *i == column => {
                    (*op, exact(v)?)
                }
                (Expression::Constant(v), Expression::Column(i, _)) if *i == column => {
                    (flip(*op)?, exact(v)?)
                }
                _ => return None,
            };
            match op {
                BinaryOp::Greater => Some((Bound::Excluded(value), Bound::Unbounded)),
                BinaryOp::GreaterOrEqual => Some((Bound::Included(value), Bound::Unbounded)),
                BinaryOp::Less => Some((Bound::Unbounded, Bound::Excluded(value))),
                BinaryOp::LessOrEqual => Some((Bound::Unbounded, Bound::Included(value))),
                _ => None,
            }
        }
        Expression::Between(e, low, high, false) => match (e.as_ref(), low.as_ref(), high.as_ref())
        {
            (Expression::Column(i, _), Expression::Constant(low), Expression::Constant(high))
                if *i == column =>
            {
                Some((Bound::Included(exact(low)?), Bound::Included(exact(high)?)))
            }
            _ => None,
        },
        _ => None,
    }
}

fn flip(op: BinaryOp) -> Option<BinaryOp> {
    Some(match op {
        BinaryOp::Greater => BinaryOp::Less,
        BinaryOp::GreaterOrEqual => BinaryOp::LessOrEqual,
        BinaryOp::Less => BinaryOp::Greater,
        BinaryOp::LessOrEqual => BinaryOp::GreaterOrEqual,
        _ => return None,
    })
}

/// The tighter of two lower (`lower = true`) or upper bounds.
fn tighter(a: Bound<Value>, b: Bound<Value>, lower: bool) -> Bound<Value> {
    use Bound::*;
    let key = |bound: &Bound<Value>| match bound {
        Included(v) | Excluded(v) => Some(v.clone()),
        Unbounded => None,
    };
    match (key(&a), key(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) => match x.cmp(&y) {
            std::cmp::Ordering::Equal => {
                if matches!(a, Excluded(_)) {
                    a
                } else {
                    b
                }
            }
            std::cmp::Ordering::Greater => {
                if lower {
                    a
                } else {
                    b
                }
            }
            std::cmp::Ordering::Less => {
                if lower {
                    b
                } else {
                    a
                }
            }
        },
    }
}

/// The most index lookups one scan makes (the product of its IN lists' lengths).
const MAX_INDEX_LOOKUPS: usize = 256;

/// The value lists an index's leading columns are pinned to, and by which filter parts; and
/// when they are pinned to one list, a range on the next column and the parts giving it.
struct IndexChoice {
    tuples: Vec<Vec<Value>>,
    used: Vec<usize>,
    range: Option<(Bound<Value>, Bound<Value>)>,
    range_parts: Vec<usize>,
}

/// The value lists an index's leading columns are pinned to by equalities or IN lists among
/// `parts` (at most [`MAX_INDEX_LOOKUPS`] of them, sorted), and which parts pin them.
fn index_prefix(table: &Table, index: &Index, parts: &[Expression]) -> IndexChoice {
    let mut tuples: Vec<Vec<Value>> = vec![Vec::new()];
    let mut used = Vec::new();
    for &column in &index.columns {
        let found = (0..parts.len()).filter(|i| !used.contains(i)).find_map(|i| {
            let (_, values) = equality(&parts[i]).filter(|(c, _)| *c == column)?;
            Some((i, lookup_values(values, table.columns[column].datatype)?))
        });
        let Some((i, values)) = found else { break };
        if tuples.len() * values.len().max(1) > MAX_INDEX_LOOKUPS {
            break;
        }
        tuples = tuples
            .iter()
            .flat_map(|tuple| {
                values.iter().map(move |value| {
                    let mut longer = tuple.clone();
                    longer.push(value.clone());
                    longer
                })
            })
            .collect();
        used.push(i);
    }
    let (mut range_at, mut range_parts) = (None, Vec::new());
    if let ([_], Some(&next)) = (tuples.as_slice(), index.columns.get(used.len())) {
        let datatype = table.columns[next].datatype;
        let (mut lower, mut upper) = (Bound::Unbounded, Bound::Unbounded);
        for (i, part) in parts.iter().enumerate() {
            if used.contains(&i) {
                continue;
            }
            if let Some((l, u)) = range(part, next, datatype) {
                lower = tighter(lower, l, true);
                upper = tighter(upper, u, false);
                range_parts.push(i);
            }
        }
        if !range_parts.is_empty() {
            range_at = Some((lower, upper));
        }
    }
    IndexChoice { tuples, used, range: range_at, range_parts }
}

/// Chooses how a scan with `filter` reads its table; returns the access and what remains of
/// the filter.
fn scan_access(table: &Table, filter: Expression) -> (Access, Option<Expression>) {
    let mut parts = Vec::new();
    conjuncts(filter, &mut parts);
    // Primary key equality or IN.
    if let Some(key) = table.primary_key {
        for i in 0..parts.len() {
            if let Some((column, values)) = equality(&parts[i]).filter(|(c, _)| *c == key)
                && let Some(keys) = lookup_values(values, table.columns[column].datatype)
            {
                parts.remove(i);
                return (Access::Keys(keys), and_all(parts));
            }
        }
    }
    // Index equality or IN on a prefix of an index's columns, then maybe a range on the next
    // one: a unique index wholly matched first, then the most columns used (the first such
    // index on ties).
    let mut best: Option<(IndexChoice, &Index)> = None;
    for index in &table.indexes {
        let choice = index_prefix(table, index, &parts);
        if choice.used.is_empty() && choice.range.is_none() {
            continue;
        }
        let score = |c: &IndexChoice, i: &Index| {
            let whole = i.unique && c.used.len() == i.columns.len();
            (whole, c.used.len() + usize::from(c.range.is_some()))
        };
        if best.as_ref().is_none_or(|(b, i)| score(&choice, index) > score(b, i)) {
            best = Some((choice, index));
        }
    }
    let index_access = |choice: IndexChoice, index: &Index, mut parts: Vec<Expression>| {
        let mut used = choice.used;
        used.extend(choice.range_parts);
        used.sort_unstable();
        for i in used.into_iter().rev() {
            parts.remove(i);
        }
        let access = match choice.range {
            Some(range) => Access::IndexScan {
                index: index.clone(),
                prefix: choice.tuples.into_iter().next().unwrap_or_default(),
                range: Some(Box::new(range)),
                reverse: false,
            },
            None => Access::Index { index: index.clone(), values: choice.tuples },
        };
        (access, and_all(parts))
    };
    let best = match best {
        Some((choice, index)) if !choice.used.is_empty() => {
            return index_access(choice, index, parts);
        }
        other => other,
    };
    // Primary key range.
    if let Some(key) = table.primary_key {
        let datatype = table.columns[key].datatype;
        let (mut lower, mut upper) = (Bound::Unbounded, Bound::Unbounded);
        let mut used = false;
        parts.retain(|part| match range(part, key, datatype) {
            Some((l, u)) => {
                lower = tighter(lower.clone(), l, true);
                upper = tighter(upper.clone(), u, false);
                used = true;
                false
            }
            None => true,
        });
        if used {
            return (Access::KeyRange(lower, upper), and_all(parts));
        }
    }
    // A range on an index's first column.
    if let Some((choice, index)) = best {
        return index_access(choice, index, parts);
    }
    (Access::Full, and_all(parts))
}
