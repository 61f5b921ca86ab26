//! Walking, rewriting and displaying plan expressions.

use super::plan::Expression;
use crate::sql::parser::ast::UnaryOp;
use crate::sql::types::Value;
use std::fmt;

impl Expression {
    /// Calls `visit` on this expression and every subexpression, stopping early if it
    /// returns false. Returns false if stopped.
    pub fn walk(&self, visit: &mut impl FnMut(&Expression) -> bool) -> bool {
        crate::sql::with_stack(|| {
            if !visit(self) {
                return false;
            }
            use Expression::*;
            match self {
                Constant(_) | Column(..) | Outer(..) => true,
                Unary(_, e) | IsNull(e, _) | Cast(e, _) => e.walk(visit),
                Binary(_, a, b) | Like(a, b, _) => a.walk(visit) && b.walk(visit),
                Between(a, b, c, _) => a.walk(visit) && b.walk(visit) && c.walk(visit),
                InList(e, list, _) => e.walk(visit) && list.iter().all(|i| i.walk(visit)),
                Function(_, args) => args.iter().all(|a| a.walk(visit)),
                Case(operand, when, otherwise) => {
                    operand.as_ref().is_none_or(|o| o.walk(visit))
                        && when.iter().all(|(w, t)| w.walk(visit) && t.walk(visit))
                        && otherwise.as_ref().is_none_or(|o| o.walk(visit))
                }
            }
        })
    }

    /// Rewrites every column reference with `map` (used when moving an expression to another
    /// node's input).
    pub fn map_columns(self, map: &impl Fn(usize) -> usize) -> Expression {
        self.map_leaves(&|leaf| match leaf {
            Expression::Column(i, name) => Expression::Column(map(i), name),
            other => other,
        })
    }

    /// Replaces each column reference by `f` of its position (moving an expression below a
    /// node that passes columns through, under their names there).
    pub fn substitute_columns(self, f: &impl Fn(usize) -> Option<Expression>) -> Expression {
        self.map_leaves(&|leaf| match leaf {
            Expression::Column(i, name) => f(i).unwrap_or(Expression::Column(i, name)),
            other => other,
        })
    }

    /// Replaces each outer reference by the value of its parameter (binding a correlated
    /// subquery to one row of the enclosing query).
    pub fn bind_outer(self, values: &[Value]) -> Expression {
        self.map_leaves(&|leaf| match leaf {
            Expression::Outer(i, name) => match values.get(i) {
                Some(value) => Expression::Constant(value.clone()),
                None => Expression::Outer(i, name),
            },
            other => other,
        })
    }

    /// Rebuilds the expression with each leaf (constant, column, outer reference) replaced by
    /// `f` of it.
    fn map_leaves(self, f: &impl Fn(Expression) -> Expression) -> Expression {
        crate::sql::with_stack(|| {
            use Expression::*;
            let m = |e: Box<Expression>| Box::new(e.map_leaves(f));
            match self {
                leaf @ (Constant(_) | Column(..) | Outer(..)) => f(leaf),
                Unary(op, e) => Unary(op, m(e)),
                Binary(op, a, b) => Binary(op, m(a), m(b)),
                IsNull(e, n) => IsNull(m(e), n),
                InList(e, list, n) => {
                    InList(m(e), list.into_iter().map(|i| i.map_leaves(f)).collect(), n)
                }
                Between(a, b, c, n) => Between(m(a), m(b), m(c), n),
                Like(a, b, n) => Like(m(a), m(b), n),
                Case(o, when, e) => Case(
                    o.map(m),
                    when.into_iter().map(|(w, t)| (w.map_leaves(f), t.map_leaves(f))).collect(),
                    e.map(m),
                ),
                Cast(e, t) => Cast(m(e), t),
                Function(function, args) => {
                    Function(function, args.into_iter().map(|a| a.map_leaves(f)).collect())
                }
            }
        })
    }

    /// Whether the expression reads an outer reference.
    pub fn reads_outer(&self) -> bool {
        !self.walk(&mut |e| !matches!(e, Expression::Outer(..)))
    }

    /// The input columns the expression reads.
    pub fn columns(&self) -> Vec<usize> {
        let mut columns = Vec::new();
        self.walk(&mut |e| {
            if let Expression::Column(i, _) = e {
                columns.push(*i);
            }
            true
        });
        columns
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::sql::with_stack(|| self.render(f))
    }
}

impl Expression {
    fn render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Expression::*;
        let not = |negated: &bool| if *negated { "NOT " } else { "" };
        match self {
            Constant(v) => write!(f, "{}", v.to_sql()),
            Column(_, name) => f.write_str(name),
            Outer(_, name) => write!(f, "outer {name}"),
            Unary(UnaryOp::Not, e) => write!(f, "NOT {e}"),
            Unary(UnaryOp::Negate, e) => write!(f, "-{e}"),
            Unary(UnaryOp::Plus, e) => write!(f, "+{e}"),
            Binary(op, a, b) => write!(f, "({a} {op} {b})"),
            IsNull(e, negated) => write!(f, "{e} IS {}NULL", not(negated)),
            InList(e, list, negated) => {
                let items: Vec<String> = list.iter().map(|i| i.to_string()).collect();
                write!(f, "{e} {}IN ({})", not(negated), items.join(", "))
            }
            Between(e, low, high, negated) => {
                write!(f, "{e} {}BETWEEN {low} AND {high}", not(negated))
            }
            Like(e, pattern, negated) => write!(f, "{e} {}LIKE {pattern}", not(negated)),
            Case(operand, when, otherwise) => {
                f.write_str("CASE")?;
                if let Some(operand) = operand {
                    write!(f, " {operand}")?;
                }
                for (w, t) in when {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(otherwise) = otherwise {
                    write!(f, " ELSE {otherwise}")?;
                }
                f.write_str(" END")
            }
            Cast(e, t) => write!(f, "CAST({e} AS {t})"),
            Function(function, args) => {
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                write!(f, "{}({})", function.name().to_uppercase(), args.join(", "))
            }
        }
    }
}
