//! Planning window functions: the calls in the select list and ORDER BY become one
//! [`Node::Window`] above the query's rows (after WHERE, GROUP BY and HAVING), which appends a
//! column per call; the select list then reads those columns ([`Windowed`]).

use super::expression::{Context, Scope, ScopeColumn, build};
use super::plan::{AggregateFunction, Expression, Node, SortKey, WindowFunction, WindowKind};
use crate::sql::error::{Error, Result};
use crate::sql::parser::ast;

/// The distinct window calls in `exprs`, in order of appearance.
pub fn collect<'a>(
    exprs: impl Iterator<Item = &'a ast::Expression>,
) -> Result<Vec<ast::Expression>> {
    fn visit(expr: &ast::Expression, out: &mut Vec<ast::Expression>, inside: bool) -> Result<()> {
        crate::sql::with_stack(|| {
            let is_window = matches!(expr, ast::Expression::Window { .. });
            if is_window {
                if inside {
                    return Err(Error::Invalid("window function calls cannot be nested".into()));
                }
                if !out.contains(expr) {
                    out.push(expr.clone());
                }
            }
            super::expression::children(expr)
                .into_iter()
                .try_for_each(|child| visit(child, out, inside || is_window))
        })
    }
    let mut out = Vec::new();
    for expr in exprs {
        visit(expr, &mut out, false)?;
    }
    Ok(out)
}

/// Builds the window node over `source` (whose columns `scope` describes, read through `ctx`)
/// for `calls`; returns it and the scope of its output.
pub fn plan(
    source: Node,
    scope: &Scope,
    ctx: &dyn Context,
    calls: &[ast::Expression],
) -> Result<(Node, Scope)> {
    let mut functions = Vec::new();
    let mut out_scope = scope.clone();
    let input = |i: usize| scope.columns.get(i).and_then(|c| c.datatype);
    for call in calls {
        let ast::Expression::Window { name, args, window } = call else { continue };
        let (kind, arity) = match name.as_str() {
            "row_number" => (WindowKind::RowNumber, 0..=0),
            "rank" => (WindowKind::Rank, 0..=0),
            "dense_rank" => (WindowKind::DenseRank, 0..=0),
            "lag" => (WindowKind::Lag, 1..=3),
            "lead" => (WindowKind::Lead, 1..=3),
            "first_value" => (WindowKind::FirstValue, 1..=1),
            "last_value" => (WindowKind::LastValue, 1..=1),
            "locf" => (WindowKind::Locf, 1..=1),
            "interpolate" => (WindowKind::Interpolate, 2..=2),
            "count" => (WindowKind::Aggregate(AggregateFunction::Count), 0..=1),
            "sum" => (WindowKind::Aggregate(AggregateFunction::Sum), 1..=1),
            "avg" => (WindowKind::Aggregate(AggregateFunction::Avg), 1..=1),
            "min" => (WindowKind::Aggregate(AggregateFunction::Min), 1..=1),
            "max" => (WindowKind::Aggregate(AggregateFunction::Max), 1..=1),
            other => {
                return Err(Error::Invalid(format!("{other}() is not a window function")));
            }
        };
        if !arity.contains(&args.len()) {
            return Err(Error::Invalid(format!(
                "wrong number of arguments to window function {name}(): {}",
                args.len()
            )));
        }
        let args = args.iter().map(|a| build(a, ctx)).collect::<Result<Vec<_>>>()?;
        let partition_by =
            window.partition_by.iter().map(|e| build(e, ctx)).collect::<Result<Vec<_>>>()?;
        let order_by = window
            .order_by
            .iter()
            .map(|o| {
                Ok(SortKey {
                    expr: build(&o.expr, ctx)?,
                    descending: o.descending,
                    nulls_first: o.nulls_first.unwrap_or(!o.descending),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let function = WindowFunction { kind, args, partition_by, order_by, frame: window.frame };
        out_scope.columns.push(ScopeColumn {
            table: None,
            name: None,
            datatype: function.datatype(&input),
            qualified_only: true,
        });
        functions.push(function);
    }
    Ok((Node::Window { source: Box::new(source), functions }, out_scope))
}

/// A context reading the window columns where the calls are, and otherwise like `inner`.
pub struct Windowed<'a> {
    /// The query's context below the windows.
    pub inner: &'a dyn Context,
    /// The window calls, in column order after the input's.
    pub calls: Vec<ast::Expression>,
    /// How many columns the input has.
    pub width: usize,
}

impl Context for Windowed<'_> {
    fn column(&self, table: Option<&str>, name: &str) -> Result<Expression> {
        self.inner.column(table, name)
    }

    fn aggregate(&self, ast: &ast::Expression) -> Result<Expression> {
        self.inner.aggregate(ast)
    }

    fn intercept(&self, ast: &ast::Expression) -> Result<Option<Expression>> {
        match self.calls.iter().position(|call| call == ast) {
            Some(i) => Ok(Some(Expression::Column(self.width + i, ast.to_string()))),
            None => self.inner.intercept(ast),
        }
    }
}
