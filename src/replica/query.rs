//! Running one query of a script: short reads inline, the rest on the blocking pool.
//!
//! A short read is a plan that reads a few rows by key and joins nothing
//! ([`Node::is_short`]): it runs on the request's own task, which saves two thread hand-offs
//! per read, and its columns, rows and result leave in one write. Anything else (or a short
//! read whose rows come to more than [`INLINE_BYTES`]) runs on the blocking pool and streams
//! its rows in batches of about [`ROW_BATCH_BYTES`] through a bounded channel, so a slow client
//! slows the query down and a client that goes away stops it.
//!
//! [`Node::is_short`]: crate::sql::planner::Node::is_short

use super::{Response, StatementError};
use crate::sql::budget::Budget;
use crate::sql::engine::Txn;
use crate::sql::execution::execute_node;
use crate::sql::parser::ast::Statement;
use crate::sql::planner::{Plan, Planner};
use crate::sql::types::Value;
use crate::sql::{Database, StatementResult};
use crate::storage::mvcc::{TransactionState, Version};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// About how many bytes of rows one message carries (a larger row goes alone).
pub const ROW_BATCH_BYTES: usize = 1 << 20;
/// The most bytes of rows a query run inline may produce; past it, it runs on the pool.
pub const INLINE_BYTES: usize = 64 << 10;

/// A query's event: [`Response::Columns`] or [`Response::Rows`].
pub type Event = Response;

/// Which state a query reads.
#[derive(Clone)]
pub enum Reader {
    /// What this node has applied (a fresh read-only snapshot).
    Latest,
    /// A read-only transaction's snapshot.
    Snapshot(TransactionState),
    /// An open read-write transaction, through a read view.
    Transaction(Version),
}

/// How a query runs.
pub enum Mode {
    /// On the request's task: gives up (`Ok(None)`) unless the plan is short and its rows fit
    /// in [`INLINE_BYTES`].
    Inline,
    /// On the blocking pool, until `deadline` (the query timeout, `timeout`, from its start).
    Pool { deadline: Instant, timeout: Duration },
}

/// Runs a query inline if it is short: its events and result, or `None` to run it on the pool.
pub fn run_inline(
    db: &Arc<Database>,
    statement: &Statement,
    reader: Reader,
    budget: Budget,
) -> Option<(Vec<Event>, Result<u64, StatementError>)> {
    let mut events = Vec::new();
    match run(db, statement, reader, budget, Mode::Inline, &mut |event| {
        events.push(event);
        Ok(())
    }) {
        Ok(None) => None,
        Ok(Some(count)) => Some((events, Ok(count))),
        Err(error) => Some((events, Err(error))),
    }
}

/// Runs a query on the blocking pool, sending its events to `rows` as they come; returns how
/// many rows it sent.
pub fn run_on_pool(
    db: &Arc<Database>,
    statement: &Statement,
    reader: Reader,
    budget: Budget,
    rows: &mpsc::Sender<Event>,
    deadline: Instant,
    timeout: Duration,
) -> Result<u64, StatementError> {
    let mode = Mode::Pool { deadline, timeout };
    let mut send = |event| {
        rows.blocking_send(event)
            .map_err(|_| StatementError::new("query_canceled", "the client went away"))
    };
    Ok(run(db, statement, reader, budget, mode, &mut send)?.unwrap_or_default())
}

/// Runs a query (or EXPLAIN), handing its columns and rows to `emit`; returns how many rows
/// it produced, or `None` when an inline run gives up before emitting anything.
fn run(
    db: &Arc<Database>,
    statement: &Statement,
    reader: Reader,
    budget: Budget,
    mode: Mode,
    emit: &mut dyn FnMut(Event) -> Result<(), StatementError>,
) -> Result<Option<u64>, StatementError> {
    // A read is not replicated: now() is this node's time.
    let now = db.read_time();
    crate::sql::clock::with_time(Some(now), || {
        run_at_clock(db, statement, reader, budget, mode, emit)
    })
}

/// [`run`], with the statement time set.
fn run_at_clock(
    db: &Arc<Database>,
    statement: &Statement,
    reader: Reader,
    budget: Budget,
    mode: Mode,
    emit: &mut dyn FnMut(Event) -> Result<(), StatementError>,
) -> Result<Option<u64>, StatementError> {
    let inline = matches!(mode, Mode::Inline);
    let mut txn = match reader {
        Reader::Latest => db.mvcc().begin_read_only().map(Txn::new).map_err(crate::sql::Error::from),
        Reader::Snapshot(state) => db.read_only_transaction(state),
        Reader::Transaction(version) => db.view_transaction(version).map_err(|_| {
            crate::sql::Error::Transaction(format!(
                "transaction {version} is no longer open: it ended, or was rolled back after its client was idle too long"
            ))
        }),
    }?;
    txn.set_budget(budget);
    // Subqueries run as the statement is planned, whatever the plan, so never on the request's
    // task: an inline attempt plans with a planner that stops at the first one (a view's too).
    let planner = match inline {
        true => Planner::deferring(&txn),
        false => Planner::new(&txn),
    };
    let (root, columns) = match statement {
        Statement::Explain(inner) => {
            // EXPLAIN plans its statement, which may run subqueries (a view's too).
            if inline && matches!(planner.plan(inner), Err(crate::sql::Error::Deferred)) {
                return Ok(None);
            }
            // EXPLAIN produces its (short) result whole.
            let result = db.resume_session(txn).execute_statement(statement)?;
            let StatementResult::Query { columns, rows: all } = result else {
                return Err(StatementError::new("internal", "EXPLAIN gave no rows"));
            };
            let count = all.len() as u64;
            emit(Event::Columns(columns))?;
            emit(Event::Rows(all))?;
            return Ok(Some(count));
        }
        statement => match planner.plan(statement) {
            Err(crate::sql::Error::Deferred) => return Ok(None),
            Err(error) => return Err(error.into()),
            Ok(Plan::Select { root, .. }) if inline && !root.is_short() => return Ok(None),
            Ok(Plan::Select { root, columns }) => (root, columns),
            Ok(_) => return Err(StatementError::new("internal", "only queries are served here")),
        },
    };
    let mut batch = Vec::new();
    let (mut bytes, mut count) = (0usize, 0u64);
    let mut columns = Some(Event::Columns(columns));
    if !inline && let Some(columns) = columns.take() {
        emit(columns)?; // a streamed query shows its columns before its first rows
    }
    for row in execute_node(root, &txn)? {
        let row = row?;
        bytes += row.iter().map(Value::size).sum::<usize>();
        batch.push(row);
        count += 1;
        match mode {
            Mode::Inline if bytes > INLINE_BYTES => return Ok(None),
            Mode::Inline => continue,
            Mode::Pool { deadline, timeout } => {
                if count.is_multiple_of(256) && Instant::now() >= deadline {
                    return Err(StatementError::new(
                        "query_canceled",
                        format!("the query ran longer than the query timeout ({timeout:?})"),
                    ));
                }
            }
        }
        if bytes >= ROW_BATCH_BYTES {
            if let Some(columns) = columns.take() {
                emit(columns)?;
            }
            emit(Event::Rows(std::mem::take(&mut batch)))?;
            bytes = 0;
        }
    }
    if let Some(columns) = columns.take() {
        emit(columns)?;
    }
    if !batch.is_empty() {
        emit(Event::Rows(batch))?;
    }
    Ok(Some(count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::budget::Limits;
    use crate::sql::parser::parse_statement;
    use crate::storage::MemoryEngine;

    fn database() -> Arc<Database> {
        let db = Arc::new(Database::open(Arc::new(MemoryEngine::new()), false).unwrap());
        let mut session = db.session();
        session.execute("CREATE TABLE t (id INT PRIMARY KEY, name TEXT)").unwrap();
        session.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')").unwrap();
        let big = "x".repeat(INLINE_BYTES + 1);
        session.execute(&format!("INSERT INTO t VALUES (4, '{big}')")).unwrap();
        db
    }

    fn inline(db: &Arc<Database>, sql: &str) -> Option<(Vec<Event>, Result<u64, StatementError>)> {
        let statement = parse_statement(sql).unwrap();
        let limits = Limits { write_bytes: 1 << 20, hold_bytes: 1 << 20 };
        run_inline(db, &statement, Reader::Latest, Budget::new(limits))
    }

    #[test]
    fn reads_by_key_run_inline_and_the_rest_go_to_the_pool() {
        let db = database();
        let (events, count) = inline(&db, "SELECT name FROM t WHERE id IN (2, 3)").unwrap();
        assert_eq!(count, Ok(2));
        assert!(matches!(&events[0], Event::Columns(c) if c.len() == 1));
        assert!(matches!(&events[1], Event::Rows(r) if r.len() == 2));
        assert_eq!(inline(&db, "SELECT COUNT(*) FROM t WHERE id = 1").unwrap().1, Ok(1));
        assert_eq!(inline(&db, "SELECT 1 + 1").unwrap().1, Ok(1));
        assert!(inline(&db, "EXPLAIN SELECT * FROM t").is_some(), "EXPLAIN reads nothing");
        // Scans, ranges and joins are not short, whatever they would return.
        for sql in [
            "SELECT * FROM t",
            "SELECT * FROM t WHERE id > 3",
            "SELECT * FROM t a JOIN t b ON a.id = b.id WHERE a.id = 1",
        ] {
            assert!(inline(&db, sql).is_none(), "{sql}");
        }
        // A row by key larger than an inline run may hold goes to the pool too.
        assert!(inline(&db, "SELECT * FROM t WHERE id = 4").is_none());
        // So does a read whose subquery runs as it is planned, however short its plan.
        assert!(inline(&db, "SELECT name FROM t WHERE id IN (SELECT id FROM t)").is_none());
        assert!(inline(&db, "EXPLAIN SELECT (SELECT COUNT(*) FROM t)").is_none());
        // Also when the subquery is in a view the read names.
        db.session()
            .execute("CREATE VIEW some AS SELECT * FROM t WHERE id IN (SELECT id FROM t)")
            .unwrap();
        assert!(inline(&db, "SELECT name FROM some WHERE id = 1").is_none());
        assert!(inline(&db, "EXPLAIN SELECT name FROM some WHERE id = 1").is_none());
        assert!(inline(&db, "SELECT name FROM t WHERE id = 1").is_some(), "others still do");
    }

    #[test]
    fn an_inline_failure_is_the_statements_result() {
        let db = database();
        let (_, outcome) = inline(&db, "SELECT id / 0 FROM t WHERE id = 1").unwrap();
        assert!(outcome.is_err());
        let (_, outcome) = inline(&db, "SELECT * FROM missing WHERE id = 1").unwrap();
        assert!(outcome.is_err(), "planning errors are results too");
    }
}
