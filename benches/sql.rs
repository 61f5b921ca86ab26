//! SQL engine benchmarks on sled (durable: every commit fsyncs), through `Session::execute`
//! from SQL text, so parsing and planning are included.

use chronos::sql::{Database, Session, StatementResult};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use std::hint::black_box;
use std::sync::Arc;

/// A durable sled database in a temporary directory (removed when dropped).
struct Fixture {
    _dir: tempfile::TempDir,
    session: Session,
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
    Fixture { _dir: dir, session }
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

fn rows_returned(results: Vec<StatementResult>) -> usize {
    match results.into_iter().next() {
        Some(StatementResult::Query { rows, .. }) => rows.len(),
        _ => 0,
    }
}

/// INSERT of N rows in one statement (one transaction, one fsync), into the seed's table and
/// into a table with a primary key and a unique index.
fn insert(c: &mut Criterion) {
    let mut group = c.benchmark_group("sql/insert");
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

/// A full scan returning every row of an N-row table.
fn scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("sql/scan");
    for rows in [100i64, 1000] {
        let mut fixture = fixture(Shape::Seed, rows);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(BenchmarkId::from_parameter(rows), |b| {
            b.iter(|| {
                let n =
                    rows_returned(fixture.session.execute("SELECT * FROM users").expect("scan"));
                assert_eq!(n, rows as usize);
                black_box(n)
            })
        });
    }
    group.finish();
}

/// One row found by primary key, and by a unique secondary index, in a 10,000-row table.
fn point_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("sql/point_lookup");
    let mut fixture = fixture(Shape::Keyed, 10_000);
    let mut id = 0i64;
    group.bench_function("primary_key", |b| {
        b.iter(|| {
            id = (id + 7919) % 10_000;
            let sql = format!("SELECT * FROM users WHERE id = {id}");
            assert_eq!(rows_returned(fixture.session.execute(&sql).expect("lookup")), 1);
        })
    });
    group.bench_function("index", |b| {
        b.iter(|| {
            id = (id + 7919) % 10_000;
            let sql = format!("SELECT * FROM users WHERE email = 'user{id}@example.com'");
            assert_eq!(rows_returned(fixture.session.execute(&sql).expect("lookup")), 1);
        })
    });
    group.finish();
}

criterion_group!(benches, insert, scan, point_lookup);
