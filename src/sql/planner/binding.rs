//! Binding a recursive table's step to the rows of its previous run, and a correlated
//! subquery to one row of its enclosing query: every outer reference of
//! the subquery's own level becomes a constant. A subquery nested in it (an inner
//! [`Node::Apply`]) numbers its outer references into its own parameters, so binding rewrites
//! that Apply's parameters, never its subquery.

use super::plan::{ApplyKind, Expression, Node};
use crate::sql::types::{Row, Value};

impl Node {
    /// The tree with the working table `id` replaced by `rows` (before a recursive table's
    /// step runs), in correlated subqueries too.
    pub fn bind_working(self, id: usize, rows: &[Row]) -> Node {
        crate::sql::with_stack(|| match self {
            Node::WorkingTable { id: read, .. } if read == id => Node::Values {
                rows: rows
                    .iter()
                    .map(|row| row.iter().cloned().map(Expression::Constant).collect())
                    .collect(),
            },
            Node::Apply { source, subquery, params, kind, label } => Node::Apply {
                source: Box::new(source.bind_working(id, rows)),
                subquery: Box::new(subquery.bind_working(id, rows)),
                params,
                kind,
                label,
            },
            node => super::optimizer::map_children(node, &|child| child.bind_working(id, rows)),
        })
    }

    /// The node with its outer references replaced by `values` (by parameter position).
    pub fn bind_outer(self, values: &[Value]) -> Node {
        self.map_expressions(&|e| e.bind_outer(values))
    }

    /// Whether any expression of this level reads an outer reference.
    pub fn reads_outer(&self) -> bool {
        self.any_expression(&|e| e.reads_outer())
    }

    /// Rebuilds the tree with `f` applied to every expression of this level.
    fn map_expressions(self, f: &impl Fn(Expression) -> Expression) -> Node {
        crate::sql::with_stack(|| {
            let b = |node: Box<Node>| Box::new(node.map_expressions(f));
            let all = |exprs: Vec<Expression>| exprs.into_iter().map(f).collect::<Vec<_>>();
            match self {
                Node::Scan { table, alias, access, filter, with_key } => {
                    Node::Scan { table, alias, access, filter: filter.map(f), with_key }
                }
                Node::Filter { source, predicate } => {
                    Node::Filter { source: b(source), predicate: f(predicate) }
                }
                Node::Projection { source, expressions } => {
                    Node::Projection { source: b(source), expressions: all(expressions) }
                }
                Node::Aggregate { source, group_by, aggregates } => Node::Aggregate {
                    source: b(source),
                    group_by: all(group_by),
                    aggregates: aggregates
                        .into_iter()
                        .map(|mut a| {
                            a.arg = a.arg.map(f);
                            a.second = a.second.map(f);
                            a
                        })
                        .collect(),
                },
                Node::Window { source, functions } => Node::Window {
                    source: b(source),
                    functions: functions
                        .into_iter()
                        .map(|mut w| {
                            w.args = all(w.args);
                            w.partition_by = all(w.partition_by);
                            for key in &mut w.order_by {
                                key.expr = f(key.expr.clone());
                            }
                            w
                        })
                        .collect(),
                },
                Node::Order { source, keys } => Node::Order {
                    source: b(source),
                    keys: keys
                        .into_iter()
                        .map(|mut k| {
                            k.expr = f(k.expr);
                            k
                        })
                        .collect(),
                },
                Node::Offset { source, offset } => Node::Offset { source: b(source), offset },
                Node::Limit { source, limit } => Node::Limit { source: b(source), limit },
                Node::Distinct { source } => Node::Distinct { source: b(source) },
                Node::NestedLoopJoin { left, right, right_width, predicate, outer } => {
                    Node::NestedLoopJoin {
                        left: b(left),
                        right: b(right),
                        right_width,
                        predicate: predicate.map(f),
                        outer,
                    }
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
                Node::Apply { source, subquery, params, kind, label } => Node::Apply {
                    source: b(source),
                    subquery,
                    params: all(params),
                    kind: match kind {
                        ApplyKind::In { operand, negated } => {
                            ApplyKind::In { operand: f(operand), negated }
                        }
                        other => other,
                    },
                    label,
                },
                Node::SemiJoin { left, left_keys, right, anti, label } => Node::SemiJoin {
                    left: b(left),
                    left_keys: all(left_keys),
                    right: b(right),
                    anti,
                    label,
                },
                Node::Values { rows } => Node::Values { rows: rows.into_iter().map(all).collect() },
                series @ Node::Series { .. } => series,
                Node::Recursive { name, initial, step, id, distinct } => {
                    Node::Recursive { name, initial: b(initial), step: b(step), id, distinct }
                }
                working @ Node::WorkingTable { .. } => working,
                Node::SetOperation { op, left, right } => {
                    Node::SetOperation { op, left: b(left), right: b(right) }
                }
            }
        })
    }

    /// Whether `f` holds for some expression of this level.
    fn any_expression(&self, f: &impl Fn(&Expression) -> bool) -> bool {
        crate::sql::with_stack(|| {
            let own: Vec<&Expression> = match self {
                Node::Scan { filter, .. } => filter.iter().collect(),
                Node::Filter { predicate, .. } => vec![predicate],
                Node::Projection { expressions, .. } => expressions.iter().collect(),
                Node::Aggregate { group_by, aggregates, .. } => group_by
                    .iter()
                    .chain(aggregates.iter().flat_map(|a| a.arg.iter().chain(&a.second)))
                    .collect(),
                Node::Order { keys, .. } => keys.iter().map(|k| &k.expr).collect(),
                Node::Window { functions, .. } => functions
                    .iter()
                    .flat_map(|w| {
                        w.args
                            .iter()
                            .chain(&w.partition_by)
                            .chain(w.order_by.iter().map(|k| &k.expr))
                    })
                    .collect(),
                Node::NestedLoopJoin { predicate, .. } => predicate.iter().collect(),
                Node::Apply { params, kind, .. } => match kind {
                    ApplyKind::In { operand, .. } => params.iter().chain([operand]).collect(),
                    _ => params.iter().collect(),
                },
                Node::SemiJoin { left_keys, .. } => left_keys.iter().collect(),
                Node::Values { rows } => rows.iter().flatten().collect(),
                Node::Series { .. } => Vec::new(),
                Node::Offset { .. }
                | Node::Limit { .. }
                | Node::Distinct { .. }
                | Node::HashJoin { .. }
                | Node::Recursive { .. }
                | Node::WorkingTable { .. }
                | Node::SetOperation { .. } => vec![],
            };
            if own.into_iter().any(f) {
                return true;
            }
            match self {
                // The subquery's outer references are its own parameters, not this level's.
                Node::Apply { source, .. } => source.any_expression(f),
                node => node.children().into_iter().any(|child| child.any_expression(f)),
            }
        })
    }
}
