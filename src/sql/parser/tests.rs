//! Parser tests: statement shapes, precedence, identifiers, errors and limits.

use super::ast::*;
use super::*;
use crate::sql::Error;
use crate::sql::types::{ArithmeticOp, DataType, Value};

fn expr(sql: &str) -> Expression {
    match parse_statement(&format!("SELECT {sql}")).unwrap() {
        Statement::Select(select) => match &select.select[0] {
            SelectItem::Expression(expr, _) => expr.clone(),
            other => panic!("not an expression: {other:?}"),
        },
        other => panic!("not a select: {other:?}"),
    }
}

fn int(i: i64) -> Box<Expression> {
    Box::new(Expression::Literal(Value::Integer(i)))
}

fn col(name: &str) -> Box<Expression> {
    Box::new(Expression::Column { table: None, name: name.into() })
}

#[test]
fn arithmetic_precedence_and_associativity() {
    use ArithmeticOp::*;
    let bin = |op, a, b| Expression::Binary(BinaryOp::Arithmetic(op), a, b);
    assert_eq!(expr("1 + 2 * 3"), bin(Add, int(1), Box::new(bin(Multiply, int(2), int(3)))));
    assert_eq!(expr("1 - 2 - 3"), bin(Subtract, Box::new(bin(Subtract, int(1), int(2))), int(3)));
    assert_eq!(expr("(1 + 2) * 3"), bin(Multiply, Box::new(bin(Add, int(1), int(2))), int(3)));
    assert_eq!(
        expr("-a * 2"),
        bin(Multiply, Box::new(Expression::Unary(UnaryOp::Negate, col("a"))), int(2))
    );
}

#[test]
fn logical_precedence() {
    // NOT binds looser than comparison, AND tighter than OR.
    assert_eq!(
        expr("NOT a = 1"),
        Expression::Unary(
            UnaryOp::Not,
            Box::new(Expression::Binary(BinaryOp::Equal, col("a"), int(1)))
        )
    );
    let or = expr("a OR b AND c");
    let Expression::Binary(BinaryOp::Or, _, right) = or else { panic!("{or:?}") };
    assert!(matches!(*right, Expression::Binary(BinaryOp::And, ..)));
    // BETWEEN's AND belongs to BETWEEN.
    let between = expr("a BETWEEN 1 AND 2 AND b");
    let Expression::Binary(BinaryOp::And, left, _) = between else { panic!("{between:?}") };
    assert!(matches!(*left, Expression::Between { negated: false, .. }));
    // IS NULL applies to the whole comparison (PostgreSQL's order).
    assert!(matches!(expr("a = b IS NULL"), Expression::IsNull { .. }));
    // || binds tighter than comparison, looser than +.
    let concat = expr("'a' || 1 + 2 = 'a3'");
    let Expression::Binary(BinaryOp::Equal, left, _) = concat else { panic!("{concat:?}") };
    assert!(
        matches!(*left, Expression::Binary(BinaryOp::Concat, _, ref r) if matches!(**r, Expression::Binary(BinaryOp::Arithmetic(ArithmeticOp::Add), ..)))
    );
}

#[test]
fn literals_and_identifiers() {
    assert_eq!(expr("'it''s'"), Expression::Literal(Value::String("it's".into())));
    assert_eq!(expr("-9223372036854775808"), Expression::Literal(Value::Integer(i64::MIN)));
    assert_eq!(expr("1.5e2"), Expression::Literal(Value::Float(150.0)));
    assert_eq!(expr("NULL"), Expression::Literal(Value::Null));
    assert_eq!(expr("FooBar"), *col("foobar"));
    assert_eq!(expr("\"FooBar\""), *col("FooBar"));
    assert_eq!(expr("\"a\"\"b\""), *col("a\"b"));
    assert_eq!(expr("t.x"), Expression::Column { table: Some("t".into()), name: "x".into() });
    assert_eq!(expr("COUNT(*)"), Expression::CountStar);
    assert_eq!(
        expr("count(DISTINCT x)"),
        Expression::Function { name: "count".into(), args: vec![*col("x")], distinct: true }
    );
}

#[test]
fn statements() {
    let create = parse_statement(
        "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, s VARCHAR(10) NOT NULL DEFAULT 'x')",
    )
    .unwrap();
    let Statement::CreateTable { name, columns, if_not_exists: true, .. } = create else {
        panic!("{create:?}")
    };
    assert_eq!(name, "t");
    assert_eq!(columns[1].datatype, DataType::String);
    assert_eq!(columns[1].max_length, Some(10));
    assert_eq!(columns[1].nullable, Some(false));
    assert_eq!(
        parse("BEGIN READ ONLY; COMMIT; ROLLBACK").unwrap(),
        vec![
            Statement::Begin { read_only: true, as_of: None },
            Statement::Commit,
            Statement::Rollback
        ]
    );
    assert_eq!(parse(";;").unwrap(), vec![]);
    assert!(matches!(parse_statement("EXPLAIN DELETE FROM t").unwrap(), Statement::Explain(_)));
    assert!(matches!(parse_statement("SELECT 1; SELECT 2"), Err(Error::Invalid(_))));
}

#[test]
fn errors_locate_and_name_the_problem() {
    let Err(Error::Parse { line, column, message }) = parse("SELECT 1;\nSELECT * FORM t") else {
        panic!()
    };
    assert_eq!((line, column), (2, 10));
    assert!(message.contains("found \"FORM\""), "{message}");
    let Err(Error::Parse { message, .. }) = parse("DROP TABLE") else { panic!() };
    assert!(message.contains("expected IF or identifier, found end of input"), "{message}");
}

#[test]
fn nesting_is_bounded() {
    // Prefix chains and long operator chains beyond the limit are errors, not crashes.
    let minus = format!("SELECT {}1", "- ".repeat(MAX_EXPRESSION_DEPTH + 5));
    assert!(matches!(parse(&minus), Err(Error::Parse { .. })));
    let chain = format!("SELECT 1{}", " + 1".repeat(MAX_EXPRESSION_DEPTH + 5));
    assert!(matches!(parse(&chain), Err(Error::Parse { .. })));
    // Within the limit they parse.
    let chain = format!("SELECT 1{}", " + 1".repeat(200));
    assert!(parse(&chain).is_ok());
}

#[test]
fn display_round_trips() {
    for sql in [
        "a + (b * -c)",
        "NOT (a = 1) OR (b IS NOT NULL)",
        "x NOT IN (1, 'two', NULL)",
        "(a BETWEEN 1 AND 2) AND (s NOT LIKE 'x%')",
        "CASE a WHEN 1 THEN 'one' ELSE CAST(a AS STRING) END",
        "coalesce(t.a, count(DISTINCT b), 2.5) || 'x'",
    ] {
        let parsed = expr(sql);
        assert_eq!(expr(&parsed.to_string()), parsed, "{sql} rendered as {parsed}");
    }
}
