//! Fuzz-style robustness: random, generated and mutated SQL must never panic the parser or the
//! executor; every failure must be an error value.
//!
//! The default run covers a few thousand cases per strategy in seconds. A failure prints the
//! seed and the SQL; replay with `FUZZ_SEED=<seed> cargo test --test fuzz`. A longer soak:
//! `FUZZ_CASES=200000 cargo test --release --test fuzz -- --ignored --nocapture`.

use chronos::sql::{Database, Session};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use chronos::rng::Rng;

/// Picks an item.
fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len())]
}

const SCHEMA: &str = "
    CREATE TABLE t1 (id INT PRIMARY KEY, a INT, b FLOAT, s STRING UNIQUE, f BOOLEAN DEFAULT FALSE);
    CREATE TABLE t2 (x INT, y STRING NOT NULL);
    CREATE INDEX t1_a ON t1 (a);
    INSERT INTO t1 VALUES (1, 10, 1.5, 'one', TRUE), (2, NULL, -2.25, 'two', FALSE), (3, 30, NULL, NULL, NULL);
    INSERT INTO t2 VALUES (1, 'x'), (3, 'y'), (NULL, 'z');";

const LITERALS: &[&str] = &[
    "0",
    "1",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "1.5",
    "1e308",
    "-0.0",
    "'a'",
    "''",
    "'%b_'",
    "NULL",
    "TRUE",
    "FALSE",
    "'it''s'",
];
const BINARY: &[&str] =
    &["+", "-", "*", "/", "%", "=", "<>", "<", "<=", ">", ">=", "AND", "OR", "||"];
const FUNCTIONS: &[&str] = &[
    "abs", "coalesce", "length", "upper", "lower", "round", "nullif", "count", "sum", "avg", "min",
    "max", "nope",
];
const TYPES: &[&str] = &["INT", "FLOAT", "STRING", "BOOLEAN", "VARCHAR(2)", "BLOB"];
const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "JOIN",
    "LEFT",
    "ON",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "CREATE",
    "TABLE",
    "INDEX",
    "DROP",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "EXPLAIN",
    "(",
    ")",
    ",",
    ";",
    "*",
    ".",
    "'",
    "\"",
    "--",
    "/*",
    "NOT",
    "IN",
    "IS",
    "NULL",
    "BETWEEN",
    "LIKE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "AS",
    "DISTINCT",
    "t1",
    "t2",
    "id",
    "a",
    "é",
    "\u{0}",
    "\u{10ffff}",
    "😀",
];

/// The kinds of values the generator aims for.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Float,
    Text,
    Bool,
}

/// Columns of each kind, by which tables are in scope.
struct Columns {
    int: &'static [&'static str],
    float: &'static [&'static str],
    text: &'static [&'static str],
    bool: &'static [&'static str],
}

const T1: Columns =
    Columns { int: &["id", "a", "t1.id"], float: &["b"], text: &["s"], bool: &["f"] };
const T2: Columns = Columns { int: &["x", "t2.x"], float: &[], text: &["y"], bool: &[] };
const BOTH: Columns =
    Columns { int: &["t1.id", "a", "x"], float: &["b"], text: &["s", "y"], bool: &["f"] };
const NONE: Columns = Columns { int: &[], float: &[], text: &[], bool: &[] };

/// An expression of roughly the wanted kind; one in ten choices ignores types on purpose.
fn expression(rng: &mut Rng, columns: &Columns, kind: Kind, depth: usize) -> String {
    if rng.chance(10) {
        return untyped(rng, columns, depth);
    }
    let pool = match kind {
        Kind::Int => columns.int,
        Kind::Float => columns.float,
        Kind::Text => columns.text,
        Kind::Bool => columns.bool,
    };
    if depth == 0 || rng.chance(30) {
        if !pool.is_empty() && rng.chance(60) {
            return pick(rng, pool).to_string();
        }
        return match kind {
            Kind::Int => {
                pick(rng, &["0", "1", "-7", "42", "9223372036854775807", "NULL"]).to_string()
            }
            Kind::Float => pick(rng, &["1.5", "-0.0", "2.5e3", "NULL"]).to_string(),
            Kind::Text => pick(rng, &["'a'", "''", "'it''s'", "'%b_'", "NULL"]).to_string(),
            Kind::Bool => pick(rng, &["TRUE", "FALSE", "NULL"]).to_string(),
        };
    }
    let d = depth - 1;
    let e = |rng: &mut Rng, kind| expression(rng, columns, kind, d);
    match kind {
        Kind::Int | Kind::Float => match rng.below(6) {
            0..=2 => format!(
                "{} {} {}",
                e(rng, kind),
                pick(rng, &["+", "-", "*", "/", "%"]),
                e(rng, kind)
            ),
            3 => format!("abs({})", e(rng, kind)),
            4 => format!(
                "CASE WHEN {} THEN {} ELSE {} END",
                e(rng, Kind::Bool),
                e(rng, kind),
                e(rng, kind)
            ),
            _ => format!("coalesce({}, {})", e(rng, kind), e(rng, kind)),
        },
        Kind::Text => match rng.below(4) {
            0 => format!("{} || {}", e(rng, Kind::Text), e(rng, Kind::Int)),
            1 => format!("{}({})", pick(rng, &["upper", "lower"]), e(rng, Kind::Text)),
            2 => format!("CAST({} AS STRING)", e(rng, Kind::Int)),
            _ => format!("nullif({}, {})", e(rng, Kind::Text), e(rng, Kind::Text)),
        },
        Kind::Bool => match rng.below(8) {
            0 => format!(
                "{} {} {}",
                e(rng, Kind::Int),
                pick(rng, &["=", "<>", "<", ">=", "<="]),
                e(rng, Kind::Int)
            ),
            1 => format!(
                "{} {} {}",
                e(rng, Kind::Text),
                pick(rng, &["=", ">", "<>"]),
                e(rng, Kind::Text)
            ),
            2 => format!(
                "({}) {} ({})",
                e(rng, Kind::Bool),
                pick(rng, &["AND", "OR"]),
                e(rng, Kind::Bool)
            ),
            3 => format!("NOT {}", e(rng, Kind::Bool)),
            4 => {
                format!("{} IS {}NULL", e(rng, Kind::Int), if rng.chance(50) { "NOT " } else { "" })
            }
            5 => format!("{} IN ({}, {})", e(rng, Kind::Int), e(rng, Kind::Int), e(rng, Kind::Int)),
            6 => format!(
                "{} BETWEEN {} AND {}",
                e(rng, Kind::Int),
                e(rng, Kind::Int),
                e(rng, Kind::Int)
            ),
            _ => format!("{} LIKE {}", e(rng, Kind::Text), e(rng, Kind::Text)),
        },
    }
}

/// An expression built without regard to types (mostly errors at run time).
fn untyped(rng: &mut Rng, columns: &Columns, depth: usize) -> String {
    let all: Vec<&str> =
        [columns.int, columns.float, columns.text, columns.bool, &["nope"]].concat();
    if depth == 0 || rng.chance(30) {
        return if rng.chance(50) {
            pick(rng, &all).to_string()
        } else {
            pick(rng, LITERALS).to_string()
        };
    }
    let d = depth - 1;
    match rng.below(5) {
        0 => format!(
            "({} {} {})",
            untyped(rng, columns, d),
            pick(rng, BINARY),
            untyped(rng, columns, d)
        ),
        1 => format!("CAST({} AS {})", untyped(rng, columns, d), pick(rng, TYPES)),
        2 => format!("{}({})", pick(rng, FUNCTIONS), untyped(rng, columns, d)),
        3 => format!("-{}", untyped(rng, columns, d)),
        _ => format!(
            "CASE {} WHEN {} THEN {} END",
            untyped(rng, columns, d),
            untyped(rng, columns, d),
            untyped(rng, columns, d)
        ),
    }
}

fn any_kind(rng: &mut Rng) -> Kind {
    *pick(rng, &[Kind::Int, Kind::Float, Kind::Text, Kind::Bool])
}

fn statement(rng: &mut Rng) -> String {
    match rng.below(12) {
        0..=3 => {
            let (from, columns) = pick(
                rng,
                &[
                    ("", &NONE),
                    (" FROM t1", &T1),
                    (" FROM t1, t2", &BOTH),
                    (" FROM t1 JOIN t2 ON t1.id = t2.x", &BOTH),
                    (" FROM t1 LEFT JOIN t2 ON a = x", &BOTH),
                    (" FROM t2", &T2),
                ],
            );
            let e = |rng: &mut Rng, kind| expression(rng, columns, kind, 3);
            let (k1, k2) = (any_kind(rng), any_kind(rng));
            let distinct = if rng.chance(20) { "DISTINCT " } else { "" };
            let mut sql = format!("SELECT {distinct}{}, {}{from}", e(rng, k1), e(rng, k2));
            if rng.chance(50) {
                sql += &format!(" WHERE {}", e(rng, Kind::Bool));
            }
            if rng.chance(25) {
                // Aggregate over the selected expressions' inputs: select a group and counts.
                let group = e(rng, k1);
                sql = format!(
                    "SELECT {group}, count(*), {}({}){from} GROUP BY {group}",
                    pick(rng, &["sum", "min", "max", "avg", "count"]),
                    e(rng, Kind::Int)
                );
                if rng.chance(50) {
                    sql += &format!(" HAVING count(*) > {}", rng.below(3));
                }
            }
            if rng.chance(40) {
                sql += &format!(
                    " ORDER BY {} {}",
                    1 + rng.below(2),
                    pick(rng, &["", "ASC", "DESC", "DESC NULLS FIRST"])
                );
            }
            if rng.chance(30) {
                sql += &format!(" LIMIT {} OFFSET {}", rng.below(5), rng.below(3));
            }
            if rng.chance(10) { format!("EXPLAIN {sql}") } else { sql }
        }
        4 => {
            let e = |rng: &mut Rng, kind| expression(rng, &NONE, kind, 2);
            let id =
                if rng.chance(80) { (4 + rng.below(1000)).to_string() } else { e(rng, Kind::Int) };
            format!(
                "INSERT INTO t1 VALUES ({id}, {}, {}, {}, {})",
                e(rng, Kind::Int),
                e(rng, Kind::Float),
                e(rng, Kind::Text),
                e(rng, Kind::Bool)
            )
        }
        5 => format!(
            "INSERT INTO t2 (y, x) SELECT {}, {} FROM t1",
            expression(rng, &T1, Kind::Text, 2),
            expression(rng, &T1, Kind::Int, 2)
        ),
        6 => {
            let (column, kind) = *pick(
                rng,
                &[
                    ("a", Kind::Int),
                    ("b", Kind::Float),
                    ("s", Kind::Text),
                    ("id", Kind::Int),
                    ("f", Kind::Bool),
                ],
            );
            format!(
                "UPDATE t1 SET {column} = {} WHERE {}",
                expression(rng, &T1, kind, 2),
                expression(rng, &T1, Kind::Bool, 2)
            )
        }
        7 => {
            let (table, columns) = pick(rng, &[("t1", &T1), ("t2", &T2)]);
            format!("DELETE FROM {table} WHERE {}", expression(rng, columns, Kind::Bool, 2))
        }
        8 => pick(
            rng,
            &[
                "BEGIN",
                "COMMIT",
                "ROLLBACK",
                "BEGIN READ ONLY",
                "BEGIN READ ONLY AS OF SYSTEM TIME 3",
            ],
        )
        .to_string(),
        9 => format!(
            "CREATE {}INDEX i{} ON {}",
            if rng.chance(50) { "UNIQUE " } else { "" },
            rng.below(3),
            pick(rng, &["t1 (b)", "t2 (y)", "t1 (nope)"])
        ),
        10 => format!(
            "CREATE TABLE IF NOT EXISTS t{} (k {} PRIMARY KEY, v {} DEFAULT {})",
            rng.below(4),
            pick(rng, TYPES),
            pick(rng, TYPES),
            untyped(rng, &NONE, 1)
        ),
        _ => pick(
            rng,
            &[
                "DROP INDEX IF EXISTS i0",
                "DROP TABLE IF EXISTS t3",
                "DROP INDEX i1",
                "SELECT * FROM t1",
            ],
        )
        .to_string(),
    }
}

/// Breaks a statement at the byte level.
fn mutate(rng: &mut Rng, sql: &str) -> String {
    let mut chars: Vec<char> = sql.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(chars.len() + 1);
        match rng.below(5) {
            0 if !chars.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            1 => chars.splice(at..at, pick(rng, TOKENS).chars()).for_each(drop),
            2 => chars.insert(at, char::from_u32(rng.below(0x3000) as u32).unwrap_or('?')),
            3 => chars.truncate(at),
            _ => {
                let end = (at + rng.below(10)).min(chars.len());
                let copy: Vec<char> = chars[at.min(end)..end].to_vec();
                chars.splice(at..at, copy).for_each(drop);
            }
        }
    }
    chars.into_iter().collect()
}

fn soup(rng: &mut Rng) -> String {
    (0..1 + rng.below(20)).map(|_| *pick(rng, TOKENS)).collect::<Vec<_>>().join(if rng.chance(50) {
        " "
    } else {
        ""
    })
}

fn fresh_session() -> (Arc<Database>, Session) {
    let db = Arc::new(Database::memory());
    let mut session = db.session();
    session.execute(SCHEMA).expect("schema");
    (db, session)
}

/// Runs `cases` inputs of each strategy from `seed`, failing on the first panic. Returns how
/// many generated (unmutated) statements succeeded.
fn run(seed: u64, cases: usize) -> usize {
    let mut rng = Rng::new(seed);
    let (mut _db, mut session) = fresh_session();
    let mut succeeded = 0;
    for case in 0..cases {
        let generated = statement(&mut rng);
        let inputs = [generated.clone(), mutate(&mut rng, &generated), soup(&mut rng)];
        for (strategy, sql) in inputs.into_iter().enumerate() {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let _ = chronos::sql::parser::parse(&sql);
                session.execute(&sql).is_ok()
            }));
            match outcome {
                Ok(ok) => succeeded += (ok && strategy == 0) as usize,
                Err(_) => panic!(
                    "panic on seed {seed}, case {case}: {sql:?}\nreplay: FUZZ_SEED={seed} cargo test --test fuzz"
                ),
            }
        }
        // Start over now and then, so the tables don't fill up or vanish for good.
        if case % 500 == 499 {
            (_db, session) = fresh_session();
        }
    }
    succeeded
}

fn cases() -> usize {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000)
}

#[test]
fn random_and_mutated_sql_never_panics() {
    let seed = std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed);
    let cases = cases();
    let succeeded = run(seed, cases);
    // The generator must reach the executor, not only the error paths.
    println!("{succeeded} of {cases} generated statements succeeded");
    assert!(succeeded * 3 >= cases, "only {succeeded} of {cases} generated statements succeeded");
}

#[test]
#[ignore = "long soak; run with --ignored"]
fn soak_many_seeds() {
    for seed in 0..64 {
        run(seed, cases());
    }
}

#[test]
fn deep_and_wide_expressions_fail_cleanly_or_work_on_a_small_stack() {
    let depth = chronos::sql::parser::MAX_EXPRESSION_DEPTH - 2;
    let shapes = [
        format!("SELECT {}1{}", "(".repeat(depth), ")".repeat(depth)),
        format!("SELECT 1{}", " + 1".repeat(depth)),
        format!("SELECT {}1", "- ".repeat(depth)),
        format!("SELECT {}TRUE", "NOT ".repeat(depth)),
        format!("SELECT {}1{}", "abs(".repeat(depth / 2), ")".repeat(depth / 2)),
        format!("SELECT {}1{}", "CASE WHEN TRUE THEN ".repeat(depth / 3), " END".repeat(depth / 3)),
        format!(
            "SELECT * FROM t1 WHERE {}",
            (0..depth).map(|i| format!("a = {i}")).collect::<Vec<_>>().join(" OR ")
        ),
        format!(
            "SELECT * FROM t1 WHERE {}",
            (0..depth).map(|i| format!("id <> {i}")).collect::<Vec<_>>().join(" AND ")
        ),
        format!(
            "SELECT id FROM t1 WHERE id IN ({})",
            (0..20_000).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        ),
        format!("SELECT 1{}", " + 1".repeat(depth + 10)),
        format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000)),
    ];
    for sql in shapes {
        // Test threads get 2 MiB of stack by default; check on exactly that.
        let handle = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let (_db, mut session) = fresh_session();
                session.execute(&sql).map(|_| ()).map_err(|error| error.to_string())
            })
            .unwrap();
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                assert!(message.contains("nested too deeply"), "unexpected error: {message}")
            }
            Err(_) => panic!("panicked"),
        }
    }
}
