//! Building plan expressions from AST expressions: name resolution in a [`Scope`] and type
//! inference for result columns.

use super::plan::{Expression, ScalarFunction};
use crate::sql::error::{Error, Result};
use crate::sql::parser::ast::{self, BinaryOp, UnaryOp};
use crate::sql::types::{ArithmeticOp, DataType, Value};

/// The columns of a node's output rows, as names can refer to them.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// The columns in row order.
    pub columns: Vec<ScopeColumn>,
}

/// A column of a scope.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeColumn {
    /// The table (or alias) the column belongs to, if any.
    pub table: Option<String>,
    /// The column's name, if it has one.
    pub name: Option<String>,
    /// The column's type, when known.
    pub datatype: Option<DataType>,
    /// Only its qualified name reaches it (`excluded.x` in ON CONFLICT DO UPDATE).
    pub qualified_only: bool,
}

impl Scope {
    /// Appends the columns of `other` (for joins).
    pub fn extend(&mut self, other: Scope) {
        self.columns.extend(other.columns);
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// True when there are no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Finds the column `table.name` (or `name` in any table).
    pub fn resolve(&self, table: Option<&str>, name: &str) -> Result<usize> {
        let mut found = None;
        for (i, column) in self.columns.iter().enumerate() {
            let table_matches = match table {
                None => !column.qualified_only,
                Some(t) => column.table.as_deref() == Some(t),
            };
            if table_matches && column.name.as_deref() == Some(name) {
                if found.is_some() {
                    return Err(Error::AmbiguousColumn(name.to_string()));
                }
                found = Some(i);
            }
        }
        found.ok_or_else(|| {
            Error::UnknownColumn(match table {
                Some(table) => format!("{table}.{name}"),
                None => name.to_string(),
            })
        })
    }

    /// A display name for column `i`.
    pub fn label(&self, i: usize) -> String {
        match &self.columns[i] {
            ScopeColumn { table: Some(table), name: Some(name), .. }
                if table == SUBQUERY_RESULT =>
            {
                name.clone()
            }
            ScopeColumn { table: Some(table), name: Some(name), .. } => format!("{table}.{name}"),
            ScopeColumn { name: Some(name), .. } => name.clone(),
            _ => format!("#{i}"),
        }
    }

    /// Whether any column belongs to `table`.
    pub fn has_table(&self, table: &str) -> bool {
        self.columns.iter().any(|c| c.table.as_deref() == Some(table))
    }
}

/// The qualifier of the hidden scope columns that hold correlated subqueries' results (no
/// SQL name can spell it, and `*` skips them since only the qualified name reaches them).
pub(super) const SUBQUERY_RESULT: &str = "\u{0}subquery";

/// Resolves a name that a query's own scope does not hold in the queries enclosing it (the
/// outer references of a correlated subquery).
pub trait OuterScopes {
    /// The outer reference for `table.name`, or `None` if no enclosing query has the column.
    fn resolve_outer(&self, table: Option<&str>, name: &str) -> Result<Option<Expression>>;
}

/// How names and aggregates are resolved while building an expression.
pub trait Context {
    /// Resolves a column reference.
    fn column(&self, table: Option<&str>, name: &str) -> Result<Expression>;

    /// Resolves an aggregate call; by default aggregates are not allowed.
    fn aggregate(&self, _ast: &ast::Expression) -> Result<Expression> {
        Err(Error::Invalid("aggregate functions are not allowed here".into()))
    }

    /// Called on every node before it is built; returning an expression replaces the node.
    fn intercept(&self, _ast: &ast::Expression) -> Result<Option<Expression>> {
        Ok(None)
    }
}

/// Resolves names in a scope, then in the enclosing queries' (if `outer` is given);
/// aggregates are errors (with `clause` naming where they were).
pub struct ScopeContext<'a> {
    /// The scope names resolve in.
    pub scope: &'a Scope,
    /// The clause being built, for error messages ("WHERE", "ON", ...).
    pub clause: &'a str,
    /// The enclosing queries, for a correlated subquery's names.
    pub outer: Option<&'a dyn OuterScopes>,
}

impl<'a> ScopeContext<'a> {
    /// A context that resolves names in `scope` only.
    pub fn new(scope: &'a Scope, clause: &'a str) -> Self {
        Self { scope, clause, outer: None }
    }
}

/// Resolves `table.name` in `scope`, then through `outer`.
pub(super) fn resolve_column(
    scope: &Scope,
    outer: Option<&dyn OuterScopes>,
    table: Option<&str>,
    name: &str,
) -> Result<Expression> {
    match scope.resolve(table, name) {
        Ok(index) => Ok(Expression::Column(index, scope.label(index))),
        Err(error @ Error::UnknownColumn(_)) => match outer {
            Some(outer) => outer.resolve_outer(table, name)?.ok_or(error),
            None => Err(error),
        },
        Err(error) => Err(error),
    }
}

impl Context for ScopeContext<'_> {
    fn column(&self, table: Option<&str>, name: &str) -> Result<Expression> {
        resolve_column(self.scope, self.outer, table, name)
    }

    fn aggregate(&self, _ast: &ast::Expression) -> Result<Expression> {
        Err(Error::Invalid(format!("aggregate functions are not allowed in {}", self.clause)))
    }
}

/// No columns in scope: only constant expressions build (VALUES, DEFAULT, LIMIT).
pub struct ConstantContext<'a>(pub &'a str);

impl Context for ConstantContext<'_> {
    fn column(&self, table: Option<&str>, name: &str) -> Result<Expression> {
        let name = table.map_or(name.to_string(), |t| format!("{t}.{name}"));
        Err(Error::Invalid(format!("column \"{name}\" cannot be used in {}", self.0)))
    }

    fn aggregate(&self, _ast: &ast::Expression) -> Result<Expression> {
        Err(Error::Invalid(format!("aggregate functions are not allowed in {}", self.0)))
    }
}

/// Whether a function name is an aggregate.
pub fn is_aggregate_call(name: &str, args: usize) -> bool {
    match name {
        "count" | "sum" | "avg" | "group_concat" | "string_agg" => true,
        // With several arguments, MIN and MAX are scalar (the least or greatest of them).
        "min" | "max" => args <= 1,
        // first(v, t) and last(v, t): TimescaleDB's.
        "first" | "last" => args == 2,
        _ => false,
    }
}

/// Whether the AST expression is an aggregate call.
pub fn is_aggregate(ast: &ast::Expression) -> bool {
    match ast {
        ast::Expression::CountStar => true,
        ast::Expression::Function { name, args, .. } => is_aggregate_call(name, args.len()),
        _ => false,
    }
}

/// Whether the AST expression contains an aggregate call anywhere.
pub fn contains_aggregate(ast: &ast::Expression) -> bool {
    let mut found = false;
    walk_ast(ast, &mut |e| {
        found |= is_aggregate(e);
        !found
    });
    found
}

/// Whether an AST expression holds a subquery (not counting those inside subqueries).
pub fn has_subquery(ast: &ast::Expression) -> bool {
    use ast::Expression::*;
    matches!(ast, Subquery(_) | Exists(_) | InSubquery { .. })
        || children(ast).into_iter().any(has_subquery)
}

/// The direct subexpressions of an AST expression.
pub fn children(ast: &ast::Expression) -> Vec<&ast::Expression> {
    use ast::Expression::*;
    match ast {
        Literal(_) | Column { .. } | CountStar | Subquery(_) | Exists(_) => vec![],
        Unary(_, e) | Cast(e, _) => vec![e],
        IsNull { expr, .. } | InSubquery { expr, .. } => vec![expr],
        Binary(_, a, b) => vec![a, b],
        Like { expr, pattern, .. } => vec![expr, pattern],
        Between { expr, low, high, .. } => vec![expr, low, high],
        InList { expr, list, .. } => std::iter::once(expr.as_ref()).chain(list).collect(),
        Function { args, .. } => args.iter().collect(),
        Window { args, window, .. } => args
            .iter()
            .chain(&window.partition_by)
            .chain(window.order_by.iter().map(|o| &o.expr))
            .collect(),
        Case { operand, when, otherwise } => operand
            .iter()
            .map(|o| o.as_ref())
            .chain(when.iter().flat_map(|(w, t)| [w, t]))
            .chain(otherwise.iter().map(|o| o.as_ref()))
            .collect(),
    }
}

/// Visits every AST node, post-order, letting `visit` rewrite it (subqueries are not
/// entered).
pub fn transform_ast(ast: &mut ast::Expression, visit: &mut impl FnMut(&mut ast::Expression)) {
    crate::sql::with_stack(|| {
        for child in ast.children_mut() {
            transform_ast(child, visit);
        }
        visit(ast);
    })
}

/// Visits every AST node, pre-order, while `visit` returns true.
pub fn walk_ast(ast: &ast::Expression, visit: &mut impl FnMut(&ast::Expression) -> bool) -> bool {
    crate::sql::with_stack(|| {
        visit(ast) && children(ast).into_iter().all(|child| walk_ast(child, visit))
    })
}

/// Builds a plan expression from an AST expression.
pub fn build(ast: &ast::Expression, ctx: &dyn Context) -> Result<Expression> {
    crate::sql::with_stack(|| build_inner(ast, ctx))
}

fn build_inner(ast: &ast::Expression, ctx: &dyn Context) -> Result<Expression> {
    if let Some(replaced) = ctx.intercept(ast)? {
        return Ok(replaced);
    }
    let b = |e: &ast::Expression| build(e, ctx).map(Box::new);
    use ast::Expression as A;
    Ok(match ast {
        A::Literal(value) => Expression::Constant(value.clone()),
        A::Column { table, name } => ctx.column(table.as_deref(), name)?,
        A::Unary(op, e) => Expression::Unary(*op, b(e)?),
        A::Binary(op, l, r) => Expression::Binary(*op, b(l)?, b(r)?),
        A::IsNull { expr, negated } => Expression::IsNull(b(expr)?, *negated),
        A::InList { expr, list, negated } => Expression::InList(
            b(expr)?,
            list.iter().map(|e| build(e, ctx)).collect::<Result<_>>()?,
            *negated,
        ),
        A::Between { expr, low, high, negated } => {
            Expression::Between(b(expr)?, b(low)?, b(high)?, *negated)
        }
        A::Like { expr, pattern, negated } => Expression::Like(b(expr)?, b(pattern)?, *negated),
        A::Case { operand, when, otherwise } => Expression::Case(
            operand.as_deref().map(b).transpose()?,
            when.iter()
                .map(|(w, t)| Ok((build(w, ctx)?, build(t, ctx)?)))
                .collect::<Result<_>>()?,
            otherwise.as_deref().map(b).transpose()?,
        ),
        A::Cast(e, datatype) => Expression::Cast(b(e)?, *datatype),
        // The planner replaces subqueries before building the clauses that may hold them
        // (`subquery.rs`, `correlated.rs`).
        A::Subquery(_) | A::Exists(_) | A::InSubquery { .. } => {
            return Err(Error::Invalid(
                "a subquery is not allowed here (DEFAULT, LIMIT, OFFSET)".into(),
            ));
        }
        A::CountStar => ctx.aggregate(ast)?,
        // The planner computes window functions below the select list and replaces them there
        // (`window.rs`); anywhere else they are not allowed.
        A::Window { name, .. } => {
            return Err(Error::Invalid(format!(
                "window function {name}() is allowed only in the select list and ORDER BY"
            )));
        }
        A::Function { name, args, .. } if is_aggregate_call(name, args.len()) => {
            ctx.aggregate(ast)?
        }
        A::Function { name, args, distinct } => {
            if *distinct {
                return Err(Error::Invalid(format!(
                    "DISTINCT is only allowed in aggregate functions, not {name}()"
                )));
            }
            let (function, arity) = match name.as_str() {
                "abs" => (ScalarFunction::Abs, 1..=1),
                "coalesce" | "ifnull" => (ScalarFunction::Coalesce, 1..=usize::MAX),
                "length" => (ScalarFunction::Length, 1..=1),
                "upper" => (ScalarFunction::Upper, 1..=1),
                "lower" => (ScalarFunction::Lower, 1..=1),
                "round" => (ScalarFunction::Round, 1..=2),
                "nullif" => (ScalarFunction::NullIf, 2..=2),
                "substr" | "substring" => (ScalarFunction::Substr, 2..=3),
                "instr" => (ScalarFunction::Instr, 2..=2),
                "trim" => (ScalarFunction::Trim, 1..=2),
                "ltrim" => (ScalarFunction::LTrim, 1..=2),
                "rtrim" => (ScalarFunction::RTrim, 1..=2),
                "replace" => (ScalarFunction::Replace, 3..=3),
                "printf" | "format" => (ScalarFunction::Printf, 1..=usize::MAX),
                "typeof" => (ScalarFunction::TypeOf, 1..=1),
                "min" => (ScalarFunction::Least, 2..=usize::MAX),
                "max" => (ScalarFunction::Greatest, 2..=usize::MAX),
                "date_trunc" => (ScalarFunction::DateTrunc, 2..=2),
                "date_part" => (ScalarFunction::DatePart, 2..=2),
                "strftime" => (ScalarFunction::Strftime, 2..=2),
                "time_bucket" => (ScalarFunction::TimeBucket, 2..=3),
                "to_timestamp" => (ScalarFunction::ToTimestamp, 1..=1),
                // The statement's time (see `sql::clock`), fixed as the statement is planned.
                "now" | "current_timestamp" if args.is_empty() => {
                    return Ok(Expression::Constant(Value::Timestamp(crate::sql::clock::now()?)));
                }
                _ => return Err(Error::Invalid(format!("unknown function {name}()"))),
            };
            if !arity.contains(&args.len()) {
                return Err(Error::Invalid(format!(
                    "wrong number of arguments to {name}(): {}",
                    args.len()
                )));
            }
            Expression::Function(
                function,
                args.iter().map(|a| build(a, ctx)).collect::<Result<_>>()?,
            )
        }
    })
}

/// Infers the type of an expression's values from the types of its input columns.
pub fn infer_type(
    expr: &Expression,
    input: &dyn Fn(usize) -> Option<DataType>,
) -> Option<DataType> {
    use Expression::*;
    let infer = |e: &Expression| infer_type(e, input);
    match expr {
        Constant(value) => value.datatype(),
        Column(i, _) => input(*i),
        Outer(..) => None,
        Unary(UnaryOp::Not, _) => Some(DataType::Boolean),
        Unary(_, e) => infer(e),
        Binary(BinaryOp::Arithmetic(op), a, b) => match (infer(a)?, infer(b)?) {
            (DataType::Integer, DataType::Integer) => Some(DataType::Integer),
            (DataType::Timestamp, DataType::Timestamp) => Some(DataType::Interval),
            (DataType::Timestamp, DataType::Interval)
            | (DataType::Interval, DataType::Timestamp) => Some(DataType::Timestamp),
            (DataType::Interval, DataType::Interval) => Some(DataType::Interval),
            (DataType::Interval, DataType::Integer | DataType::Float)
            | (DataType::Integer | DataType::Float, DataType::Interval)
                if matches!(op, ArithmeticOp::Multiply | ArithmeticOp::Divide) =>
            {
                Some(DataType::Interval)
            }
            (DataType::Integer | DataType::Float, DataType::Integer | DataType::Float) => {
                Some(DataType::Float)
            }
            _ => None,
        },
        Binary(BinaryOp::Concat, ..) => Some(DataType::String),
        Binary(..) | IsNull(..) | InList(..) | Between(..) | Like(..) => Some(DataType::Boolean),
        Case(_, when, otherwise) => when
            .iter()
            .map(|(_, then)| infer(then))
            .chain(otherwise.iter().map(|e| infer(e)))
            .flatten()
            .next(),
        Cast(_, datatype) => Some(*datatype),
        Function(ScalarFunction::Length | ScalarFunction::Instr, _) => Some(DataType::Integer),
        Function(
            ScalarFunction::DateTrunc | ScalarFunction::TimeBucket | ScalarFunction::ToTimestamp,
            _,
        ) => Some(DataType::Timestamp),
        Function(ScalarFunction::DatePart, args) => match args.first() {
            Some(Constant(Value::String(field))) => Some(match field.as_str() {
                "second" | "seconds" | "epoch" => DataType::Float,
                _ => DataType::Integer,
            }),
            _ => None,
        },
        Function(
            ScalarFunction::Upper
            | ScalarFunction::Lower
            | ScalarFunction::Substr
            | ScalarFunction::Trim
            | ScalarFunction::LTrim
            | ScalarFunction::RTrim
            | ScalarFunction::Replace
            | ScalarFunction::Printf
            | ScalarFunction::Strftime
            | ScalarFunction::TypeOf,
            _,
        ) => Some(DataType::String),
        Function(ScalarFunction::Coalesce, args) => args.iter().filter_map(infer).next(),
        Function(_, args) => args.first().and_then(infer),
    }
}
