//! Aggregation in a SELECT: GROUP BY, the aggregate calls of the select list, HAVING and
//! ORDER BY, and the context in which expressions over the groups are built (a column must be
//! grouped or aggregated).

use super::expression::{
    Context, OuterScopes, SUBQUERY_RESULT, Scope, ScopeColumn, ScopeContext, build, children,
    contains_aggregate, infer_type, is_aggregate, resolve_column,
};
use super::plan::{Aggregate, AggregateFunction, Expression, Node};
use super::planner::Planner;
use crate::sql::error::{Error, Result};
use crate::sql::parser::ast;
use crate::sql::types::Value;

impl Planner<'_> {
    /// Plans the aggregation of a SELECT: the Aggregate node and the context in which
    /// expressions after it are built.
    pub(super) fn plan_aggregation(
        &self,
        source: Node,
        scope: &Scope,
        select: &ast::Select,
        items: &[(ast::Expression, Option<String>, String)],
    ) -> Result<(Node, Grouped<'_>)> {
        let input = self.scope_context(scope, "GROUP BY");
        let mut group_asts = Vec::new();
        for expr in &select.group_by {
            // A position or an output alias refers to the select list (input columns win).
            let expr = match expr {
                ast::Expression::Literal(Value::Integer(n)) => {
                    let item = usize::try_from(*n)
                        .ok()
                        .and_then(|n| n.checked_sub(1))
                        .and_then(|n| items.get(n));
                    item.ok_or_else(|| {
                        Error::Invalid(format!("GROUP BY position {n} is not in select list"))
                    })?
                    .0
                    .clone()
                }
                ast::Expression::Column { table: None, name }
                    if scope.resolve(None, name).is_err() =>
                {
                    items
                        .iter()
                        .find(|(_, output, _)| output.as_deref() == Some(name.as_str()))
                        .map_or_else(|| expr.clone(), |(e, ..)| e.clone())
                }
                other => other.clone(),
            };
            if contains_aggregate(&expr) {
                return Err(Error::Invalid(
                    "aggregate functions are not allowed in GROUP BY".into(),
                ));
            }
            group_asts.push(expr);
        }
        let groups = group_asts.iter().map(|g| build(g, &input)).collect::<Result<Vec<_>>>()?;

        let mut aggregate_asts = Vec::new();
        for expr in items
            .iter()
            .map(|(e, ..)| e)
            .chain(&select.having)
            .chain(select.order_by.iter().map(|o| &o.expr))
        {
            collect_aggregates(expr, &mut aggregate_asts)?;
        }
        let arguments = self.scope_context(scope, "aggregate function arguments");
        let mut aggregates = Vec::new();
        for ast in &aggregate_asts {
            aggregates.push(match ast {
                ast::Expression::CountStar => Aggregate {
                    function: AggregateFunction::Count,
                    arg: None,
                    distinct: false,
                    second: None,
                },
                ast::Expression::Function { name, args, distinct } => {
                    let function = match name.as_str() {
                        "count" => AggregateFunction::Count,
                        "sum" => AggregateFunction::Sum,
                        "avg" => AggregateFunction::Avg,
                        "min" => AggregateFunction::Min,
                        "max" => AggregateFunction::Max,
                        "first" => AggregateFunction::First,
                        "last" => AggregateFunction::Last,
                        _ => AggregateFunction::GroupConcat,
                    };
                    let (arg, separator) = match (name.as_str(), args.as_slice()) {
                        ("string_agg", [arg, separator]) | ("group_concat", [arg, separator]) => {
                            (arg, Some(build(separator, &arguments)?))
                        }
                        ("string_agg", _) => {
                            return Err(Error::Invalid(
                                "string_agg() takes two arguments: a value and a separator".into(),
                            ));
                        }
                        ("first" | "last", [arg, time]) => (arg, Some(build(time, &arguments)?)),
                        ("group_concat", [arg]) => (arg, None),
                        ("group_concat", _) => {
                            return Err(Error::Invalid(
                                "group_concat() takes one or two arguments".into(),
                            ));
                        }
                        (_, [arg]) => (arg, None),
                        _ => {
                            return Err(Error::Invalid(format!(
                                "{name}() takes exactly one argument"
                            )));
                        }
                    };
                    let arg = build(arg, &arguments)?;
                    if arg.reads_outer() && arg.columns().is_empty() {
                        // SQL makes such a call the enclosing query's aggregate; computing it
                        // here, per row, would give another answer.
                        return Err(Error::Invalid(format!(
                            "{name}() reads only columns of an enclosing query, which makes it \
                             that query's aggregate; this is not supported: compute it in the \
                             enclosing query"
                        )));
                    }
                    Aggregate { function, arg: Some(arg), distinct: *distinct, second: separator }
                }
                _ => return Err(Error::Invalid("not an aggregate".into())),
            });
        }

        let input_type = |i: usize| scope.columns.get(i).and_then(|c| c.datatype);
        let mut post_scope = Scope::default();
        for (ast, group) in group_asts.iter().zip(&groups) {
            post_scope.columns.push(match (ast, group) {
                (ast::Expression::Column { .. }, Expression::Column(i, _)) => {
                    scope.columns[*i].clone()
                }
                _ => ScopeColumn {
                    table: None,
                    name: None,
                    datatype: infer_type(group, &input_type),
                    qualified_only: false,
                },
            });
        }
        for aggregate in &aggregates {
            let datatype = match aggregate.function {
                AggregateFunction::Count => Some(crate::sql::types::DataType::Integer),
                AggregateFunction::Avg => Some(crate::sql::types::DataType::Float),
                AggregateFunction::GroupConcat => Some(crate::sql::types::DataType::String),
                _ => aggregate.arg.as_ref().and_then(|a| infer_type(a, &input_type)),
            };
            post_scope.columns.push(ScopeColumn {
                table: None,
                name: None,
                datatype,
                qualified_only: false,
            });
        }
        let labels = groups
            .iter()
            .map(|g| g.to_string())
            .chain(aggregates.iter().map(|a| a.to_string()))
            .collect();
        let node =
            Node::Aggregate { source: Box::new(source), group_by: groups.clone(), aggregates };
        let context = Grouped {
            input: scope.clone(),
            groups,
            aggregates: aggregate_asts,
            post_scope,
            labels,
            outer: self,
        };
        Ok((node, context))
    }
}

/// Builds expressions over an Aggregate node's output: grouped expressions and aggregate calls
/// become its columns, as do correlated subqueries' results over it; a name of the enclosing
/// queries is an outer reference; any other column reference is an error.
pub(super) struct Grouped<'a> {
    /// The scope before aggregation.
    input: Scope,
    /// The GROUP BY expressions, built in the input scope.
    groups: Vec<Expression>,
    /// The aggregate calls, in output order after the groups.
    aggregates: Vec<ast::Expression>,
    /// The scope of the Aggregate node's output.
    pub(super) post_scope: Scope,
    /// Display labels of the output columns.
    labels: Vec<String>,
    /// The enclosing queries.
    outer: &'a dyn OuterScopes,
}

impl Grouped<'_> {
    fn output(&self, index: usize) -> Expression {
        let label = match self.post_scope.columns[index].name {
            Some(_) => self.post_scope.label(index),
            None => self.labels[index].clone(),
        };
        Expression::Column(index, label)
    }
}

impl Context for Grouped<'_> {
    fn column(&self, table: Option<&str>, name: &str) -> Result<Expression> {
        if table == Some(SUBQUERY_RESULT) {
            return resolve_column(&self.post_scope, None, table, name);
        }
        match self.input.resolve(table, name) {
            Ok(_) => Err(Error::Invalid(format!(
                "column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"
            ))),
            Err(error @ Error::UnknownColumn(_)) => {
                self.outer.resolve_outer(table, name)?.ok_or(error)
            }
            Err(error) => Err(error),
        }
    }

    fn intercept(&self, ast: &ast::Expression) -> Result<Option<Expression>> {
        if is_aggregate(ast) {
            let index = self
                .aggregates
                .iter()
                .position(|a| a == ast)
                .ok_or_else(|| Error::Invalid("unknown aggregate".into()))?;
            return Ok(Some(self.output(self.groups.len() + index)));
        }
        if self.groups.is_empty() || contains_aggregate(ast) {
            return Ok(None);
        }
        let input = ScopeContext::new(&self.input, "SELECT");
        match build(ast, &input) {
            Ok(built) => Ok(self.groups.iter().position(|g| *g == built).map(|i| self.output(i))),
            // Not buildable on its own (an unknown column): report it when building normally.
            Err(_) => Ok(None),
        }
    }
}

/// Collects the distinct aggregate calls in an expression, rejecting nested aggregates.
fn collect_aggregates(expr: &ast::Expression, out: &mut Vec<ast::Expression>) -> Result<()> {
    crate::sql::with_stack(|| {
        if is_aggregate(expr) {
            if children(expr).into_iter().any(contains_aggregate) {
                return Err(Error::Invalid("aggregate function calls cannot be nested".into()));
            }
            if !out.contains(expr) {
                out.push(expr.clone());
            }
            return Ok(());
        }
        children(expr).into_iter().try_for_each(|child| collect_aggregates(child, out))
    })
}
