//! EXPLAIN: plans rendered as indented trees, one node per line.

use super::plan::{Access, ApplyKind, Expression, Node, Plan};
use crate::sql::parser::ast::SetOperator;
use crate::sql::types::Value;
use std::fmt::Write as _;
use std::ops::Bound;

impl Plan {
    /// Renders the plan as an indented tree, one node per line (EXPLAIN).
    pub fn explain(&self) -> String {
        let mut out = String::new();
        match self {
            Plan::Select { root, .. } => root.explain(&mut out, "", ""),
            Plan::Insert { table, source, .. } => {
                let _ = writeln!(out, "Insert: {}", table.name);
                source.explain(&mut out, "└─ ", "   ");
            }
            Plan::Update { table, source, set, .. } => {
                let set: Vec<String> =
                    set.iter().map(|(i, e)| format!("{} = {e}", table.columns[*i].name)).collect();
                let _ = writeln!(out, "Update: {} ({})", table.name, set.join(", "));
                source.explain(&mut out, "└─ ", "   ");
            }
            Plan::Delete { table, source, .. } => {
                let _ = writeln!(out, "Delete: {}", table.name);
                source.explain(&mut out, "└─ ", "   ");
            }
            other => {
                let _ = writeln!(
                    out,
                    "{}",
                    format!("{other:?}").split([' ', '{']).next().unwrap_or("Statement")
                );
            }
        }
        out.trim_end().to_string()
    }
}

impl Node {
    fn explain(&self, out: &mut String, prefix: &str, indent: &str) {
        let list = |exprs: &[Expression]| {
            exprs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
        };
        let line = match self {
            Node::Scan { table, alias, access, filter, .. } => {
                let name = match alias {
                    Some(alias) if alias != &table.name => format!("{} AS {alias}", table.name),
                    _ => table.name.clone(),
                };
                let key = table
                    .primary_key
                    .map_or("rowid".to_string(), |k| table.columns[k].name.clone());
                let mut line = match access {
                    Access::Full => format!("Scan: {name}"),
                    Access::Keys(keys) => {
                        let keys: Vec<String> = keys.iter().map(|k| k.to_sql()).collect();
                        format!("KeyLookup: {name} ({key} IN {})", keys.join(", "))
                    }
                    Access::KeyRangeBackward(Bound::Unbounded, Bound::Unbounded) => {
                        format!("Scan: {name} (last key first)")
                    }
                    Access::KeyRangeBackward(start, end) => {
                        format!(
                            "KeyRange: {name} ({}, last key first)",
                            describe_range(&key, start, end)
                        )
                    }
                    Access::KeyRange(start, end) => {
                        format!("KeyRange: {name} ({})", describe_range(&key, start, end))
                    }
                    Access::IndexScan { index, prefix, range, reverse } => {
                        let column = |i: usize| {
                            index.columns.get(i).map_or("?", |c| table.columns[*c].name.as_str())
                        };
                        let mut parts: Vec<String> = prefix
                            .iter()
                            .enumerate()
                            .map(|(i, v)| format!("{} = {}", column(i), v.to_sql()))
                            .collect();
                        if let Some((start, end)) = range.as_deref() {
                            parts.push(describe_range(column(prefix.len()), start, end));
                        }
                        let order: Vec<&str> = (0..index.columns.len()).map(column).collect();
                        let order = match reverse {
                            true => format!("reverse order of {}", order.join(", ")),
                            false => format!("order of {}", order.join(", ")),
                        };
                        match parts.is_empty() {
                            true => format!("IndexScan: {name} via {} (in {order})", index.name),
                            false => format!(
                                "IndexScan: {name} via {} ({}, in {order})",
                                index.name,
                                parts.join(" AND "),
                            ),
                        }
                    }
                    Access::Index { index, values } => {
                        let width = values.first().map_or(1, Vec::len);
                        let names: Vec<&str> = index.columns[..width.min(index.columns.len())]
                            .iter()
                            .map(|c| table.columns[*c].name.as_str())
                            .collect();
                        let tuple = |list: &[String]| match list {
                            [one] => one.clone(),
                            many => format!("({})", many.join(", ")),
                        };
                        let shown: Vec<String> = values
                            .iter()
                            .map(|v| tuple(&v.iter().map(Value::to_sql).collect::<Vec<_>>()))
                            .collect();
                        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                        format!(
                            "IndexLookup: {name} via {} ({} IN {})",
                            index.name,
                            tuple(&names),
                            shown.join(", ")
                        )
                    }
                };
                if let Some(filter) = filter {
                    let _ = write!(line, " filter {filter}");
                }
                line
            }
            Node::Filter { predicate, .. } => format!("Filter: {predicate}"),
            Node::Projection { expressions, .. } => format!("Projection: {}", list(expressions)),
            Node::Aggregate { group_by, aggregates, .. } => {
                let aggs: Vec<String> = aggregates.iter().map(|a| a.to_string()).collect();
                match group_by.is_empty() {
                    true => format!("Aggregate: {}", aggs.join(", ")),
                    false => format!("Aggregate: {} group by {}", aggs.join(", "), list(group_by)),
                }
            }
            Node::Window { functions, .. } => {
                let functions: Vec<String> = functions.iter().map(|w| w.to_string()).collect();
                format!("Window: {}", functions.join(", "))
            }
            Node::Order { keys, .. } => {
                let keys: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{} {}", k.expr, if k.descending { "DESC" } else { "ASC" }))
                    .collect();
                format!("Order: {}", keys.join(", "))
            }
            Node::Offset { offset, .. } => format!("Offset: {offset}"),
            Node::Limit { limit, .. } => format!("Limit: {limit}"),
            Node::Distinct { .. } => "Distinct".to_string(),
            Node::NestedLoopJoin { predicate, outer, .. } => {
                let kind = if *outer { "left " } else { "" };
                match predicate {
                    Some(p) => format!("NestedLoopJoin: {kind}on {p}"),
                    None => format!("NestedLoopJoin: {kind}cross"),
                }
            }
            Node::HashJoin { left_column, right_column, outer, .. } => {
                let kind = if *outer { "left " } else { "" };
                format!("HashJoin: {kind}on left #{left_column} = right #{right_column}")
            }
            Node::Values { rows } => format!("Values: {} row(s)", rows.len()),
            Node::Series { start, stop, step } => {
                format!("Series: {} to {} by {}", start.to_sql(), stop.to_sql(), step.to_sql())
            }
            Node::Recursive { name, distinct, .. } => {
                let all = if *distinct { "" } else { " all" };
                format!(
                    "Recursive: {name} (initial, then union{all} of runs on the last run's rows)"
                )
            }
            Node::WorkingTable { name, .. } => {
                format!("WorkingTable: {name} (the last run's rows)")
            }
            Node::Apply { params, kind, label, .. } => {
                let what = match kind {
                    ApplyKind::Value => "value".to_string(),
                    ApplyKind::Exists => "EXISTS".to_string(),
                    ApplyKind::In { operand, negated: false } => format!("{operand} IN"),
                    ApplyKind::In { operand, negated: true } => format!("{operand} NOT IN"),
                };
                format!("Apply: {label} = {what}, correlated, run per row for {}", list(params))
            }
            Node::SemiJoin { left_keys, right, anti, label, .. } => {
                let right_keys = match right.as_ref() {
                    Node::Projection { expressions, .. } => list(expressions),
                    _ => "#0".to_string(),
                };
                let kind = if *anti { "AntiJoin" } else { "SemiJoin" };
                format!("{kind}: {label} decorrelated, on ({}) = ({right_keys})", list(left_keys))
            }
            Node::SetOperation { op, .. } => match op {
                SetOperator::Union => "Union".to_string(),
                SetOperator::UnionAll => "Union: all".to_string(),
                SetOperator::Intersect => "Intersect".to_string(),
                SetOperator::Except => "Except".to_string(),
            },
        };
        let _ = writeln!(out, "{prefix}{line}");
        let mut children = self.children();
        // A correlated subquery is shown as it runs: optimized (once bound, again).
        let optimized;
        if let Node::Apply { subquery, .. } = self {
            optimized = super::optimizer::optimize_query(subquery.as_ref().clone());
            children[1] = &optimized;
        }
        let count = children.len();
        for (i, child) in children.into_iter().enumerate() {
            let last = i + 1 == count;
            let child_prefix = format!("{indent}{}", if last { "└─ " } else { "├─ " });
            let child_indent = format!("{indent}{}", if last { "   " } else { "│  " });
            child.explain(out, &child_prefix, &child_indent);
        }
    }
}

fn describe_range(key: &str, start: &Bound<Value>, end: &Bound<Value>) -> String {
    let mut parts = Vec::new();
    match start {
        Bound::Included(v) => parts.push(format!("{key} >= {}", v.to_sql())),
        Bound::Excluded(v) => parts.push(format!("{key} > {}", v.to_sql())),
        Bound::Unbounded => {}
    }
    match end {
        Bound::Included(v) => parts.push(format!("{key} <= {}", v.to_sql())),
        Bound::Excluded(v) => parts.push(format!("{key} < {}", v.to_sql())),
        Bound::Unbounded => {}
    }
    parts.join(" AND ")
}
