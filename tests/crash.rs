//! Durability under `kill -9`: a child process writes through the SQL engine on sled and
//! acknowledges each commit on stdout; the parent kills it mid-write, reopens the database and
//! checks that every acknowledged write is there, that nothing partial is, and that an
//! uncommitted transaction was rolled back.

use chronos::sql::types::Value;
use chronos::sql::{Database, StatementResult};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The child's data directory; set only in the child.
const DIR_VAR: &str = "CHRONOS_CRASH_TEST_DIR";
/// Rows per batch; a batch is one transaction.
const BATCH: i64 = 10;
/// Batches each child acknowledges before it is killed.
const ACKS_PER_ROUND: i64 = 40;
/// How long the parent waits for the child to make progress.
const DEADLINE: Duration = Duration::from_secs(60);

/// The child: writes batches forever. Runs only when started by the parent.
#[test]
#[ignore = "run by crash_test_kill_9 in a child process"]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(DIR_VAR) else { return };
    let db = Arc::new(Database::open_sled(&dir).expect("open"));
    let mut session = db.session();
    session
        .execute(
            "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, batch INT NOT NULL, payload STRING);
             CREATE INDEX IF NOT EXISTS t_batch ON t (batch);
             CREATE TABLE IF NOT EXISTS progress (id INT PRIMARY KEY, last INT)",
        )
        .expect("schema");
    let last = match session.execute("SELECT MAX(batch) FROM t").expect("max").remove(0) {
        StatementResult::Query { rows, .. } => match &rows[0][0] {
            Value::Integer(i) => *i,
            _ => -1,
        },
        _ => -1,
    };
    if last < 0 {
        session.execute("INSERT INTO progress VALUES (1, -1)").expect("progress row");
    }
    // A transaction that is in flight (its writes flushed) when the process dies.
    let mut in_flight = db.session();
    in_flight
        .execute("BEGIN; INSERT INTO t VALUES (-1, -1, 'never committed')")
        .expect("in flight");
    println!("ready {last}");
    for batch in last + 1.. {
        let values: Vec<String> = (0..BATCH)
            .map(|i| format!("({}, {batch}, '{}')", batch * BATCH + i, "x".repeat(200)))
            .collect();
        session
            .execute(&format!(
                "BEGIN; INSERT INTO t VALUES {}; UPDATE progress SET last = {batch} WHERE id = 1; COMMIT",
                values.join(", ")
            ))
            .expect("write");
        // COMMIT returned: the batch is fsynced. Only now acknowledge it.
        println!("acked {batch}");
    }
}

fn query_ints(db: &Arc<Database>, sql: &str) -> Vec<Vec<i64>> {
    let mut session = db.session();
    match session.execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}")).remove(0) {
        StatementResult::Query { rows, .. } => rows
            .iter()
            .map(|row| {
                row.iter().map(|v| if let Value::Integer(i) = v { *i } else { i64::MIN }).collect()
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

/// Runs the child until it has acknowledged `ACKS_PER_ROUND` batches, then kills it.
/// Returns the last batch acknowledged.
fn run_child_and_kill(dir: &Path) -> i64 {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "crash_child_writer", "--ignored", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + DEADLINE;
    let (mut first, mut last_acked) = (None, -1);
    while last_acked < first.unwrap_or(i64::MAX).saturating_add(ACKS_PER_ROUND) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(remaining).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the child made no progress in {DEADLINE:?}")
        });
        // libtest may print "test crash_child_writer ... " on the same line first.
        if let Some((_, ready)) = line.split_once("ready ") {
            first = Some(ready.trim().parse::<i64>().expect("ready"));
        } else if let Some(acked) = line.strip_prefix("acked ") {
            last_acked = acked.parse().expect("acked");
        }
    }
    // SIGKILL, while the child is in the middle of its next batch.
    child.kill().expect("kill");
    child.wait().expect("wait");
    last_acked
}

#[test]
fn crash_test_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut last_acked = -1;
    for round in 0..3 {
        let acked = run_child_and_kill(dir.path());
        assert!(acked > last_acked, "round {round} made progress");
        last_acked = acked;

        let db = Arc::new(Database::open_sled(dir.path()).expect("reopen after kill -9"));
        assert!(db.mvcc().active_versions().is_empty(), "in-flight transactions were rolled back");
        let per_batch = query_ints(&db, "SELECT batch, COUNT(*) FROM t GROUP BY batch");
        let max_batch = per_batch.last().map_or(-1, |row| row[0]);
        // Every acknowledged batch is there; a batch the kill interrupted may or may not be,
        // but never in part.
        assert!(
            max_batch >= acked && max_batch <= acked + 1,
            "round {round}: acked {acked}, found {max_batch}"
        );
        for (expected, row) in per_batch.iter().enumerate() {
            assert_eq!(
                row,
                &vec![expected as i64, BATCH],
                "round {round}: batch {expected} is whole"
            );
        }
        assert!(
            query_ints(&db, "SELECT id FROM t WHERE batch = -1").is_empty(),
            "uncommitted rows are gone"
        );
        // The other table written in the same transactions agrees.
        assert_eq!(query_ints(&db, "SELECT last FROM progress"), vec![vec![max_batch]]);
        // The index agrees with the table.
        let by_index =
            query_ints(&db, &format!("SELECT COUNT(*) FROM t WHERE batch = {max_batch}"));
        let by_scan =
            query_ints(&db, &format!("SELECT COUNT(*) FROM t WHERE batch + 0 = {max_batch}"));
        assert_eq!(by_index, by_scan);
        println!("round {round}: killed after batch {acked}; {} batches intact", per_batch.len());
    }
}
