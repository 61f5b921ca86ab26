//! SQL engine benchmarks on sled (durable: every commit fsyncs): parsing and planning alone,
//! then statements through `Session::execute` from SQL text (parse and plan included) on
//! tables of 100, 1,000 and 100,000 rows.

use chronos::sql::parser::parse_statement;
use chronos::sql::planner::Planner;
use chronos::sql::{Database, Session, StatementResult, engine::Txn};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use std::hint::black_box;
use std::sync::Arc;

/// Table sizes of the executor benchmarks.
const SIZES: [i64; 3] = [100, 1_000, 100_000];

/// A durable sled database in a temporary directory (removed when dropped).
struct Fixture {
    _dir: tempfile::TempDir,
    db: Arc<Database>,
    session: Session,
    rows: i64,
}

/// The table shapes benchmarked.
#[derive(Clone, Copy)]
enum Shape {
    /// The seed's example table: no primary key (hidden row ids), no index.
    Seed,
    /// A primary key and a unique secondary index.
    Keyed,
}

fn fixture(shape: Shape, rows: i64) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Arc::new(Database::open_sled(dir.path()).expect("open sled"));
    let mut session = db.session();
    let schema = match shape {
        Shape::Seed => "CREATE TABLE users (id INT, name STRING, balance FLOAT)",
        Shape::Keyed => {
            "CREATE TABLE users (id INT PRIMARY KEY, name STRING, email STRING, balance FLOAT);
             CREATE UNIQUE INDEX users_email ON users (email)"
        }
    };
    session.execute(schema).expect("schema");
    for first in (0..rows).step_by(1000) {
        session.execute(&insert_sql(shape, first, (rows - first).min(1000))).expect("load");
    }
    Fixture { _dir: dir, db, session, rows }
}

/// One INSERT statement of `count` rows with ids from `first`.
fn insert_sql(shape: Shape, first: i64, count: i64) -> String {
    let values: Vec<String> = (first..first + count)
        .map(|id| match shape {
            Shape::Seed => format!("({id}, 'user {id}', {}.5)", id % 1000),
            Shape::Keyed => format!("({id}, 'user {id}', 'user{id}@example.com', {}.5)", id % 1000),
        })
        .collect();
    format!("INSERT INTO users VALUES {}", values.join(", "))
}

fn query_rows(results: Vec<StatementResult>) -> Vec<Vec<chronos::sql::types::Value>> {
    match results.into_iter().next() {
        Some(StatementResult::Query { rows, .. }) => rows,
        _ => Vec::new(),
    }
}

/// Keyed tables of every size in `SIZES`, built once for all the read benchmarks.
fn keyed_fixtures() -> Vec<Fixture> {
    SIZES.iter().map(|rows| fixture(Shape::Keyed, *rows)).collect()
}

/// Fewer samples for the largest table, so the whole run stays short.
fn samples_for(rows: i64) -> usize {
    if rows >= 100_000 { 10 } else { 50 }
}

/// Parsing a statement, and planning it against a catalog (no execution).
fn parse_and_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("sql/parse_plan");
    let fixture = fixture(Shape::Keyed, 0);
    let statements = [
        ("point_select", "SELECT name, balance FROM users WHERE id = 42"),
        ("insert_row", "INSERT INTO users VALUES (1, 'user 1', 'user1@example.com', 1.5)"),
        (
            "aggregate",
            "SELECT name, COUNT(*), SUM(balance) FROM users WHERE balance > 10 GROUP BY name ORDER BY 2 DESC LIMIT 10",
        ),
    ];
    for (name, sql) in statements {
        group.bench_function(BenchmarkId::new("parse", name), |b| {
            b.iter(|| black_box(parse_statement(black_box(sql)).expect("parse")))
        });
        let statement = parse_statement(sql).expect("parse");
        let txn = Txn::new(fixture.db.mvcc().begin_read_only().expect("begin"));
        group.bench_function(BenchmarkId::new("plan", name), |b| {
            b.iter(|| black_box(Planner::new(&txn).plan(&statement).expect("plan")))
        });
    }
    group.finish();
}

/// INSERT of N rows in one statement (one transaction, one fsync), into the seed's table and
/// into a table with a primary key and a unique index.
fn insert_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("sql/insert_batch");
    for (name, shape, rows) in [
        ("100", Shape::Seed, 100i64),
        ("1000", Shape::Seed, 1000),
        ("1000_keyed_indexed", Shape::Keyed, 1000),
    ] {
        let mut fixture = fixture(shape, 0);
        let mut next = 0i64;
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || {
                    next += rows;
                    insert_sql(shape, next, rows)
                },
                |sql| black_box(fixture.session.execute(&sql).expect("insert")),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// A single-row autocommit INSERT (one fsync) into a keyed, indexed table of N rows.
fn insert_row(c: &mut Criterion) {
    let mut group = c.benchmark_group("sql/insert_row");
    for rows in SIZES {
        let mut fixture = fixture(Shape::Keyed, rows);
        let mut next = rows;
        group.sample_size(50);
        group.bench_function(BenchmarkId::from_parameter(rows), |b| {
            b.iter(|| {
                next += 1;
                black_box(
                    fixture.session.execute(&insert_sql(Shape::Keyed, next, 1)).expect("insert"),
                )
            })
        });
    }
    group.finish();
}

/// Reads over keyed tables of every size: a full scan returning every row, an aggregate with
/// a filter, a point lookup by primary key, and one by a unique secondary index.
fn reads(c: &mut Criterion) {
    let mut fixtures = keyed_fixtures();
    let mut group = c.benchmark_group("sql/scan");
    for fixture in &mut fixtures {
        let rows = fixture.rows;
        group.sample_size(samples_for(rows));
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(BenchmarkId::from_parameter(rows), |b| {
            b.iter(|| {
                let found =
                    query_rows(fixture.session.execute("SELECT * FROM users").expect("scan"));
                assert_eq!(found.len(), rows as usize);
                black_box(found)
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sql/aggregate");
    for fixture in &mut fixtures {
        let rows = fixture.rows;
        group.sample_size(samples_for(rows));
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(BenchmarkId::new("count_star", rows), |b| {
            b.iter(|| {
                let found = query_rows(
                    fixture.session.execute("SELECT COUNT(*) FROM users").expect("count"),
                );
                assert_eq!(found, vec![vec![chronos::sql::types::Value::Integer(rows)]]);
            })
        });
        group.bench_function(BenchmarkId::new("sum_filter", rows), |b| {
            b.iter(|| {
                let sql = "SELECT COUNT(*), SUM(balance) FROM users WHERE balance >= 500";
                black_box(query_rows(fixture.session.execute(sql).expect("aggregate")))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sql/point_lookup");
    for fixture in &mut fixtures {
        let rows = fixture.rows;
        let mut id = 0i64;
        group.bench_function(BenchmarkId::new("primary_key", rows), |b| {
            b.iter(|| {
                id = (id + 7919) % rows;
                let sql = format!("SELECT * FROM users WHERE id = {id}");
                assert_eq!(query_rows(fixture.session.execute(&sql).expect("lookup")).len(), 1);
            })
        });
        group.bench_function(BenchmarkId::new("index", rows), |b| {
            b.iter(|| {
                id = (id + 7919) % rows;
                let sql = format!("SELECT * FROM users WHERE email = 'user{id}@example.com'");
                assert_eq!(query_rows(fixture.session.execute(&sql).expect("lookup")).len(), 1);
            })
        });
    }
    group.finish();
}

/// Many-way joins and subqueries on small tables: eight 10-row tables linked by equalities
/// written in an order that reaches each link late (planned in a better order, as hash joins),
/// an IN (SELECT ...) subquery, and correlated subqueries (an EXISTS decorrelated into a
/// semi-join, a value run per row); planning alone and the whole statement.
fn queries(c: &mut Criterion) {
    let mut group = c.benchmark_group("sql/queries");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Arc::new(Database::open_sled(dir.path()).expect("open sled"));
    let mut session = db.session();
    for i in 1..=8 {
        let rows: Vec<String> =
            (1..=10).map(|k| format!("({k}, {}, 'r{i}{k}')", (k * i) % 10 + 1)).collect();
        session
            .execute(&format!(
                "CREATE TABLE t{i} (a INT PRIMARY KEY, b INT, c STRING); INSERT INTO t{i} VALUES {}",
                rows.join(", ")
            ))
            .expect("load");
    }
    let statements = [
        (
            "join4",
            "SELECT COUNT(*) FROM t1, t2, t3, t4 WHERE t1.b = t3.a AND t3.b = t2.a AND t2.b = t4.a",
        ),
        (
            "join8",
            "SELECT COUNT(*) FROM t1, t2, t3, t4, t5, t6, t7, t8 WHERE t1.b = t5.a AND t5.b = t3.a \
             AND t3.b = t8.a AND t8.b = t2.a AND t2.b = t7.a AND t7.b = t4.a AND t4.b = t6.a",
        ),
        ("subquery_in", "SELECT COUNT(*) FROM t1 WHERE b IN (SELECT a FROM t2 WHERE b > 5)"),
        (
            "correlated_exists",
            "SELECT COUNT(*) FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.b = t1.a AND t2.c <> 'x')",
        ),
        ("correlated_value", "SELECT a, (SELECT COUNT(*) FROM t2 WHERE t2.b < t1.b) FROM t1"),
    ];
    for (name, sql) in statements {
        let statement = parse_statement(sql).expect("parse");
        let txn = Txn::new(db.mvcc().begin_read_only().expect("begin"));
        group.bench_function(BenchmarkId::new("plan", name), |b| {
            b.iter(|| black_box(Planner::new(&txn).plan(&statement).expect("plan")))
        });
        group.bench_function(BenchmarkId::new("run", name), |b| {
            b.iter(|| black_box(query_rows(session.execute(sql).expect("query"))))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = super::config();
    targets = parse_and_plan, insert_batch, insert_row, reads, queries
}
