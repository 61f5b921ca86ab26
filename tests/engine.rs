//! End-to-end tests of the SQL engine as a library: the seed's session, error kinds,
//! persistence across reopen, and determinism across replicas and engines.

use chronos::sql::{Database, Error, Session, StatementResult, format};
use chronos::storage::{Engine, KeyValue, MemoryEngine, SledEngine};
use std::ops::Bound;
use std::sync::Arc;

/// Runs a script and renders each result as the command line would: a table for queries,
/// the summary line otherwise.
fn transcript(session: &mut Session, sql: &str) -> String {
    let mut out = String::new();
    for result in session.execute(sql).unwrap() {
        match &result {
            StatementResult::Query { columns, rows } => {
                let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
                out.push_str(&format::render_table(&names, rows));
            }
            other => {
                out.push_str(&format::summary(other));
                out.push('\n');
            }
        }
    }
    out
}

#[test]
fn seed_session_prints_the_seed_table() {
    let db = Arc::new(Database::memory());
    let mut session = db.session();
    let setup = transcript(
        &mut session,
        "CREATE TABLE users (id INT, name STRING, balance FLOAT);
         INSERT INTO users VALUES (1, 'Alice', 100.5), (2, 'Bob', 250.75);",
    );
    assert_eq!(setup, "Query OK\nQuery OK, 2 rows affected\n");
    let table = transcript(&mut session, "SELECT * FROM users;");
    assert_eq!(
        table,
        "+----+-------+---------+\n\
         | id | name  | balance |\n\
         +----+-------+---------+\n\
         | 1  | Alice | 100.5   |\n\
         | 2  | Bob   | 250.75  |\n\
         +----+-------+---------+\n"
    );
    let rest = transcript(
        &mut session,
        "DELETE FROM users WHERE id = 2;
         BEGIN;
         UPDATE users SET balance = balance + 10 WHERE name = 'Alice';
         COMMIT;
         SELECT * FROM users;",
    );
    assert_eq!(
        rest,
        "Query OK, 1 row affected\n\
         BEGIN (transaction 4)\n\
         Query OK, 1 row affected\n\
         COMMIT\n\
         +----+-------+---------+\n\
         | id | name  | balance |\n\
         +----+-------+---------+\n\
         | 1  | Alice | 110.5   |\n\
         +----+-------+---------+\n"
    );
}

#[test]
fn error_kinds_are_distinct_and_actionable() {
    let db = Arc::new(Database::memory());
    let mut session = db.session();
    session
        .execute(
            "CREATE TABLE t (id INT PRIMARY KEY, name STRING NOT NULL, tag STRING UNIQUE);
             INSERT INTO t VALUES (1, 'a', 'x');
             CREATE TABLE u (id INT)",
        )
        .unwrap();
    let cases = [
        ("SELEKT 1", "syntax_error"),
        ("SELECT * FROM nope", "unknown_table"),
        ("CREATE TABLE t (x INT)", "table_exists"),
        ("SELECT nope FROM t", "unknown_column"),
        ("SELECT id FROM t, u", "ambiguous_column"),
        ("DROP INDEX nope", "unknown_index"),
        ("CREATE INDEX t_tag_key ON t (name)", "index_exists"),
        ("SELECT 'a' + 1", "type_mismatch"),
        ("INSERT INTO t (id) VALUES (2)", "not_null_violation"),
        ("INSERT INTO t VALUES (2, 'b', 'x')", "unique_violation"),
        ("INSERT INTO t VALUES (1, 'b', 'y')", "primary_key_violation"),
        ("SELECT 1 / 0", "division_by_zero"),
        ("SELECT 9223372036854775807 + 1", "out_of_range"),
        ("SELECT COUNT(*) FROM t WHERE COUNT(*) > 1", "invalid_statement"),
        ("COMMIT", "transaction_state"),
    ];
    let mut kinds = Vec::new();
    for (sql, expected) in cases {
        let error = session.execute(sql).expect_err(sql);
        assert_eq!(error.kind(), expected, "{sql}: {error}");
        assert!(error.is_deterministic(), "{sql}");
        assert!(!error.to_string().is_empty());
        kinds.push(error.kind());
    }
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds.len(), cases.len(), "every case has its own kind");

    // Serialization failures and read-only writes, from transactions.
    let mut other = db.session();
    session.execute("BEGIN; UPDATE t SET name = 'b' WHERE id = 1").unwrap();
    other.execute("BEGIN").unwrap();
    let conflict = other.execute("UPDATE t SET name = 'c' WHERE id = 1").unwrap_err();
    assert_eq!(conflict.kind(), "serialization_failure", "{conflict}");
    other.execute("ROLLBACK").unwrap();
    session.execute("COMMIT").unwrap();
    other.execute("BEGIN READ ONLY").unwrap();
    assert_eq!(other.execute("DELETE FROM t").unwrap_err(), Error::ReadOnly);
}

#[test]
fn data_survives_closing_and_reopening_sled() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Arc::new(Database::open_sled(dir.path()).unwrap());
        let mut session = db.session();
        session
            .execute("CREATE TABLE t (id INT PRIMARY KEY, v STRING); CREATE INDEX t_v ON t (v)")
            .unwrap();
        session
            .execute(
                "INSERT INTO t VALUES (1, 'one'), (2, 'two'); UPDATE t SET v = 'uno' WHERE id = 1",
            )
            .unwrap();
    }
    let db = Arc::new(Database::open_sled(dir.path()).unwrap());
    let mut session = db.session();
    let expected = StatementResult::Query {
        columns: vec![chronos::sql::planner::OutputColumn {
            name: "id".into(),
            datatype: Some(chronos::sql::types::DataType::Integer),
        }],
        rows: vec![vec![chronos::sql::types::Value::Integer(1)]],
    };
    assert_eq!(session.execute("SELECT id FROM t WHERE v = 'uno'").unwrap(), vec![expected]);
    session.execute("INSERT INTO t VALUES (3, 'three')").unwrap();
}

#[test]
fn reopening_rolls_back_transactions_left_in_flight() {
    let engine = MemoryEngine::new();
    {
        let db = Arc::new(Database::open(Arc::new(engine.clone()), false).unwrap());
        let mut session = db.session();
        session
            .execute("CREATE TABLE t (id INT PRIMARY KEY, v STRING); CREATE INDEX t_v ON t (v)")
            .unwrap();
        session.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')").unwrap();
        let mut open = db.session();
        open.execute(
            "BEGIN; INSERT INTO t VALUES (3, 'three'); UPDATE t SET v = 'uno' WHERE id = 1",
        )
        .unwrap();
        // The process "dies": the open transaction is neither committed nor rolled back.
        std::mem::forget(open);
    }
    let db = Arc::new(Database::open(Arc::new(engine), false).unwrap());
    assert!(db.mvcc().active_versions().is_empty());
    let mut session = db.session();
    let all = session.execute("SELECT id, v FROM t ORDER BY id").unwrap();
    let StatementResult::Query { rows, .. } = &all[0] else { panic!("{all:?}") };
    assert_eq!(rows.len(), 2, "the uncommitted insert is gone: {rows:?}");
    assert_eq!(rows[0][1].to_string(), "one", "the uncommitted update is gone");
    // The index agrees with the table, and the rolled-back keys are writable again.
    let by_index = session.execute("SELECT id FROM t WHERE v = 'uno'").unwrap();
    assert!(matches!(&by_index[0], StatementResult::Query { rows, .. } if rows.is_empty()));
    session
        .execute("INSERT INTO t VALUES (3, 'again'); UPDATE t SET v = 'uno' WHERE id = 1")
        .unwrap();
}

/// Every key and value of an engine, in order.
fn dump(engine: &dyn Engine) -> Vec<KeyValue> {
    engine.scan((Bound::Unbounded, Bound::Unbounded)).collect::<Result<_, _>>().unwrap()
}

/// A workload with every kind of write, failures and aborted transactions included.
const WORKLOAD: &[&str] = &[
    "CREATE TABLE acct (id INT PRIMARY KEY, owner STRING UNIQUE, balance FLOAT DEFAULT 0)",
    "CREATE TABLE log (msg STRING, amount FLOAT)",
    "CREATE INDEX acct_balance ON acct (balance)",
    "INSERT INTO acct VALUES (1, 'ann', 10), (2, 'bob', 20.5), (3, 'cy', NULL)",
    "INSERT INTO acct VALUES (4, 'ann', 1)",
    "BEGIN",
    "UPDATE acct SET balance = balance * 1.1 WHERE id < 3",
    "INSERT INTO log SELECT owner, balance FROM acct WHERE balance IS NOT NULL",
    "INSERT INTO acct VALUES (1, 'dup', 0)",
    "COMMIT",
    "BEGIN",
    "DELETE FROM acct WHERE id = 2",
    "ROLLBACK",
    "UPDATE acct SET id = 30 WHERE id = 3",
    "INSERT INTO log SELECT owner || '!', SUM(balance) FROM acct GROUP BY owner",
    "DELETE FROM log WHERE amount < 11",
    "DROP INDEX acct_balance",
    "CREATE TABLE gone (x INT)",
    "DROP TABLE gone",
];

fn run_workload(db: &Arc<Database>) {
    let mut session = db.session();
    for sql in WORKLOAD {
        // Failing statements are part of the workload: they must fail the same everywhere.
        let _ = session.execute(sql);
    }
}

#[test]
fn replicas_applying_the_same_statements_are_byte_identical() {
    let (a, b) = (MemoryEngine::new(), MemoryEngine::new());
    let dir = tempfile::tempdir().unwrap();
    let sled = SledEngine::open(dir.path()).unwrap();
    for engine in
        [Arc::new(a.clone()) as Arc<dyn Engine>, Arc::new(b.clone()), Arc::new(sled.clone())]
    {
        let db = Arc::new(Database::open(engine, false).unwrap());
        run_workload(&db);
        db.gc().unwrap();
    }
    assert!(!a.dump().is_empty());
    assert_eq!(a.dump(), b.dump());
    assert_eq!(a.dump(), dump(&sled), "sled holds the same keys and values as memory");
}

#[test]
fn gc_keeps_query_results_and_drops_old_versions() {
    let engine = MemoryEngine::new();
    let db = Arc::new(Database::open(Arc::new(engine.clone()), false).unwrap());
    let mut session = db.session();
    session.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)").unwrap();
    for i in 0..20 {
        session.execute(&format!("INSERT INTO t VALUES ({i}, 0)")).unwrap();
    }
    for round in 1..=5 {
        session.execute(&format!("UPDATE t SET v = {round}")).unwrap();
    }
    let query = "SELECT COUNT(*), SUM(v) FROM t";
    let before = session.execute(query).unwrap();
    let keys_before = engine.dump().len();
    let stats = db.gc().unwrap();
    assert_eq!(stats.deleted, 20 * 5, "five superseded versions of each of 20 rows");
    // 100 versions fewer, and the 100 records that marked them as superseded; one new key:
    // the persisted GC horizon.
    assert_eq!(engine.dump().len(), keys_before - 100 - 100 + 1);
    assert_eq!(session.execute(query).unwrap(), before);
}

#[test]
fn an_endless_recursion_ends_at_the_statements_memory_limit() {
    let db = Arc::new(Database::memory());
    let mut session = db.session();
    session.set_limits(chronos::sql::budget::Limits { write_bytes: 1 << 20, hold_bytes: 1 << 20 });
    let endless = "WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt) \
                   SELECT COUNT(*) FROM cnt";
    let error = session.execute(endless).unwrap_err();
    assert_eq!(error.kind(), "resource_limit", "{error}");
    // With a LIMIT the same recursion ends on its own.
    let limited = "WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt LIMIT 1000) \
                   SELECT COUNT(*) FROM cnt";
    let results = session.execute(limited).unwrap();
    let [StatementResult::Query { rows, .. }] = results.as_slice() else { panic!("{results:?}") };
    assert_eq!(rows[0][0].to_string(), "1000");
}

#[test]
fn analyze_counts_rows_and_estimates_distinct_values_in_bounded_memory() {
    use chronos::sql::engine::Txn;
    let db = Arc::new(Database::memory());
    let mut session = db.session();
    session
        .execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, tenth INTEGER, c INTEGER);
             INSERT INTO t WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000)
                 SELECT x, x / 10, 7 FROM n;
             ANALYZE t",
        )
        .unwrap();
    let txn = Txn::new(db.mvcc().begin_read_only().unwrap());
    let statistics = txn.must_get_table("t").unwrap().statistics.expect("analyzed");
    assert_eq!(statistics.rows, 20_000);
    let [id, tenth, c] = statistics.distinct.as_slice() else { panic!("{statistics:?}") };
    // Estimated from 256 hashes: within 20% of the truth, exact for few values.
    assert!((16_000..=20_000).contains(id), "{id}");
    assert!((1_600..=2_400).contains(tenth), "{tenth}");
    assert_eq!(*c, 1);
}

#[test]
fn the_engine_counts_rows_as_statements_write_them() {
    use chronos::sql::engine::Txn;
    let db = Arc::new(Database::memory());
    let mut session = db.session();
    session
        .execute(
            "CREATE TABLE c (id INTEGER PRIMARY KEY, v INTEGER);
             INSERT INTO c VALUES (1, 1), (2, 2), (3, 3);
             DELETE FROM c WHERE id = 2;
             UPDATE c SET id = 7 WHERE id = 3;
             INSERT OR REPLACE INTO c VALUES (1, 9)",
        )
        .unwrap();
    // A failed statement is undone, its count too.
    assert!(session.execute("INSERT INTO c VALUES (4, 4), (1, 1)").is_err());
    let live = || Txn::new(db.mvcc().begin_read_only().unwrap()).live_rows("c").unwrap();
    assert_eq!(live(), 2);
    session.execute("DROP TABLE c; CREATE TABLE c (id INTEGER PRIMARY KEY)").unwrap();
    assert_eq!(live(), 0, "a new table of the name starts from zero");
}
