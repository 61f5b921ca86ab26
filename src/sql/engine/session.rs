//! A database and its sessions: transaction control, autocommit and statement execution.

use super::Txn;
use crate::sql::budget::{Budget, Limits};
use crate::sql::error::{Error, Result};
use crate::sql::execution::{StatementResult, execute};
use crate::sql::parser::{self, ast::Statement};
use crate::sql::planner::{OutputColumn, Planner, retention};
use crate::sql::types::{DataType, Value};
use crate::storage::mvcc::{GcStats, Mvcc, TransactionState};
use crate::storage::{Engine, MemoryEngine, SledEngine};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// A SQL database on one storage engine, shared by its sessions.
pub struct Database {
    mvcc: Mvcc,
    /// Held while a write statement runs: statements write one at a time, which is what the
    /// MVCC write latch requires and what a replicated log does anyway.
    write_lock: Mutex<()>,
    /// Whether commits fsync before they return (true for a standalone database on disk;
    /// a replicated node gets durability from its log instead).
    durable: bool,
    /// Whether any user exists, remembered between changes (see `users.rs`).
    pub(super) users: super::users::UsersCache,
    /// The latest log time applied here (see `Meta::clock`): a read's time is never earlier,
    /// so a read does not show rows the log has already expired.
    log_clock: std::sync::atomic::AtomicI64,
}

impl Database {
    /// Opens a database on an engine. Transactions a previous process left in flight are
    /// rolled back, since their sessions are gone.
    pub fn open(engine: Arc<dyn Engine>, durable: bool) -> Result<Self> {
        let mvcc = Mvcc::open(engine)?;
        mvcc.rollback_in_flight()?;
        Ok(Self {
            mvcc,
            write_lock: Mutex::new(()),
            durable,
            users: Default::default(),
            log_clock: Default::default(),
        })
    }

    /// Opens a replica's database: transactions in flight stay in flight (the replicated log
    /// carries their later statements), and commits do not fsync (the log is durable).
    pub fn open_replicated(engine: Arc<dyn Engine>) -> Result<Self> {
        Ok(Self {
            mvcc: Mvcc::open(engine)?,
            write_lock: Mutex::new(()),
            durable: false,
            users: Default::default(),
            log_clock: Default::default(),
        })
    }

    /// Opens (or creates) a durable database in directory `path` (sled).
    pub fn open_sled(path: impl AsRef<Path>) -> Result<Self> {
        Self::open(Arc::new(SledEngine::open(path)?), true)
    }

    /// A new in-memory database.
    pub fn memory() -> Self {
        let mvcc = Mvcc::open(Arc::new(MemoryEngine::new()));
        // Opening an empty memory engine reads nothing and cannot fail.
        let mvcc =
            mvcc.unwrap_or_else(|error| panic!("empty memory engine failed to open: {error}"));
        Self {
            mvcc,
            write_lock: Mutex::new(()),
            durable: false,
            users: Default::default(),
            log_clock: Default::default(),
        }
    }

    /// Deletes at most `limit` rows that expired as of `now` (see `planner::retention`) from
    /// the tables with a TTL, in name order, in one transaction: what every replica does for
    /// the leader's expiry entry, so they delete the same rows. Returns how many went (fewer
    /// than `limit`: none are left as of `now`).
    pub fn expire(self: &Arc<Self>, now: i64, limit: u64) -> Result<u64> {
        let _guard = self.lock_writes();
        let mut txn = Txn::new(self.mvcc.begin()?);
        let mut expire = || -> Result<u64> {
            let mut deleted = 0;
            for table in txn.list_tables()? {
                let Some(plan) = retention::expire_plan(table, now, limit - deleted)? else {
                    continue;
                };
                if let StatementResult::Delete { count } = execute(plan, &mut txn)? {
                    deleted += count;
                }
                if deleted >= limit {
                    break;
                }
            }
            Ok(deleted)
        };
        match expire() {
            Ok(deleted) => {
                txn.commit()?;
                self.flush_if_durable()?;
                Ok(deleted)
            }
            Err(error) => {
                txn.rollback()?;
                Err(error)
            }
        }
    }

    /// Whether any table has rows that expired as of `now` (a read, for deciding whether to
    /// propose an expiry).
    pub fn has_expired_rows(self: &Arc<Self>, now: i64) -> Result<bool> {
        let mut txn = Txn::new(self.mvcc.begin_read_only()?);
        for table in txn.list_tables()? {
            if let Some(plan) = retention::expired_query(&table, now, 1)?
                && execute(plan, &mut txn)?.rows_affected() > 0
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Records that the log's time reached `now` (it only moves forward).
    pub fn observe_log_clock(&self, now: i64) {
        self.log_clock.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// The time a read here is given: the wall clock, or the log's time if that is later.
    pub fn read_time(&self) -> i64 {
        let log = self.log_clock.load(std::sync::atomic::Ordering::Relaxed);
        crate::sql::clock::wall_clock().max(log)
    }

    /// Starts a session.
    pub fn session(self: &Arc<Self>) -> Session {
        Session { db: self.clone(), txn: None, limits: Limits::NONE, clock: None }
    }

    /// A session continuing an open transaction.
    pub fn resume_session(self: &Arc<Self>, txn: Txn) -> Session {
        Session { db: self.clone(), txn: Some(txn), limits: Limits::NONE, clock: None }
    }

    /// The in-flight read-write transaction `version`, resumed on this handle (it must have
    /// been flushed: see [`Session::flush`]).
    pub fn resume_transaction(&self, version: u64) -> Result<Txn> {
        Ok(Txn::resumed(self.mvcc.resume(self.mvcc.load_state(version)?)?))
    }

    /// A read view of the in-flight read-write transaction `version`, for running its queries
    /// outside the session that writes it.
    pub fn view_transaction(&self, version: u64) -> Result<Txn> {
        Ok(Txn::new(self.mvcc.view(version)?))
    }

    /// Reopens a read-only snapshot from its state.
    pub fn read_only_transaction(&self, state: TransactionState) -> Result<Txn> {
        Ok(Txn::new(self.mvcc.begin_read_only_at(state)?))
    }

    /// The MVCC store.
    pub fn mvcc(&self) -> &Mvcc {
        &self.mvcc
    }

    /// Garbage-collects versions no open transaction can see.
    pub fn gc(&self) -> Result<GcStats> {
        Ok(self.mvcc.gc(self.mvcc.oldest_visible_version())?)
    }

    pub(super) fn lock_writes(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere leaves nothing inconsistent.
        self.write_lock.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn flush_if_durable(&self) -> Result<()> {
        if self.durable {
            self.mvcc.engine().flush()?;
        }
        Ok(())
    }
}

/// A connection's state: at most one explicit transaction. Statements outside a transaction
/// autocommit. A failed statement is undone on its own (its partial writes are discarded) and
/// an explicit transaction stays usable, as in SQLite and MySQL.
pub struct Session {
    db: Arc<Database>,
    txn: Option<Txn>,
    /// What each statement may write and hold (see [`Limits`]).
    limits: Limits,
    /// The time `now()` gives the statements that follow (see `sql::clock`).
    clock: Option<i64>,
}

impl Session {
    /// Parses and runs a script, stopping at the first error. An error about a name (an
    /// unknown or ambiguous column or table) says where the script names it.
    pub fn execute(&mut self, sql: &str) -> Result<Vec<StatementResult>> {
        let mut results = Vec::new();
        for (statement, span) in parser::parse_spans(sql)? {
            match self.execute_statement(&statement) {
                Ok(result) => results.push(result),
                Err(error) => return Err(error.located(sql, span.start, &sql[span])),
            }
        }
        Ok(results)
    }

    /// Limits what each statement that follows may write and hold: a statement past them
    /// fails with a `resource_limit` error (the same one on every replica).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Sets the time (microseconds since 1970, UTC) that `now()` and DEFAULT now() give the
    /// statements that follow. A replica sets the time its log entry carries.
    pub fn set_clock(&mut self, now: i64) {
        self.clock = Some(now);
    }

    /// Whether an explicit transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// The open transaction, if any.
    pub fn transaction(&self) -> Option<&Txn> {
        self.txn.as_ref()
    }

    /// Ends the session, handing over its open transaction (dropping a read-write one would
    /// roll it back).
    pub fn into_transaction(self) -> Option<Txn> {
        self.txn
    }

    /// Writes the open transaction's in-flight markers if it has not written yet, so it can be
    /// resumed and so the stored data alone describes it (a replica snapshot carries it).
    pub fn flush(&mut self) -> Result<()> {
        if let Some(txn) = &mut self.txn {
            txn.flush()?;
        }
        Ok(())
    }

    /// Runs one statement.
    pub fn execute_statement(&mut self, statement: &Statement) -> Result<StatementResult> {
        let result = self.run_statement(statement);
        // Users may have changed once it is committed: by itself, or by the COMMIT.
        if matches!(statement, Statement::Users(_) | Statement::Commit) {
            self.db.users_changed();
        }
        result
    }

    fn run_statement(&mut self, statement: &Statement) -> Result<StatementResult> {
        // Without a time of its own, the session keeps the one its caller set, if any.
        match self.clock {
            Some(now) => {
                crate::sql::clock::with_time(Some(now), || self.run_statement_at_clock(statement))
            }
            None => self.run_statement_at_clock(statement),
        }
    }

    fn run_statement_at_clock(&mut self, statement: &Statement) -> Result<StatementResult> {
        let mvcc = self.db.mvcc.clone();
        match statement {
            Statement::Begin { read_only, as_of } => {
                if self.txn.is_some() {
                    return Err(Error::Transaction("a transaction is already in progress".into()));
                }
                let txn = match (read_only, as_of) {
                    (true, Some(version)) => mvcc.begin_as_of(*version)?,
                    (true, None) => mvcc.begin_read_only()?,
                    (false, _) => mvcc.begin()?,
                };
                let result =
                    StatementResult::Begin { version: txn.version(), read_only: *read_only };
                self.txn = Some(Txn::new(txn));
                Ok(result)
            }
            Statement::Commit => {
                let txn = self
                    .txn
                    .take()
                    .ok_or_else(|| Error::Transaction("no transaction is in progress".into()))?;
                let (version, writable) = (txn.mvcc().version(), !txn.mvcc().read_only());
                // The outbox numbers rows in commit order (see `outbox.rs`).
                let _guard = writable.then(|| self.db.lock_writes());
                txn.commit()?;
                if writable {
                    self.db.flush_if_durable()?;
                }
                Ok(StatementResult::Commit { version })
            }
            Statement::Rollback => {
                let txn = self
                    .txn
                    .take()
                    .ok_or_else(|| Error::Transaction("no transaction is in progress".into()))?;
                let version = txn.mvcc().version();
                txn.rollback()?;
                Ok(StatementResult::Rollback { version })
            }
            Statement::Explain(inner) => {
                if matches!(
                    **inner,
                    Statement::Begin { .. }
                        | Statement::Commit
                        | Statement::Rollback
                        | Statement::Explain(_)
                ) {
                    return Err(Error::Invalid(
                        "EXPLAIN needs a query or a write statement".into(),
                    ));
                }
                let plan = match &self.txn {
                    Some(txn) => Planner::new(txn).plan(inner)?,
                    None => Planner::new(&Txn::new(mvcc.begin_read_only()?)).plan(inner)?,
                };
                let rows = plan
                    .explain()
                    .lines()
                    .map(|line| vec![Value::String(line.to_string())])
                    .collect();
                let columns =
                    vec![OutputColumn { name: "plan".into(), datatype: Some(DataType::String) }];
                Ok(StatementResult::Query { columns, rows })
            }
            statement => {
                let writes = !statement.is_read_only();
                match &mut self.txn {
                    Some(txn) => {
                        if writes && txn.mvcc().read_only() {
                            return Err(Error::ReadOnly);
                        }
                        txn.set_budget(Budget::new(self.limits));
                        let _guard = writes.then(|| self.db.lock_writes());
                        let result =
                            Planner::new(txn).plan(statement).and_then(|plan| execute(plan, txn));
                        if writes {
                            match &result {
                                Ok(_) => txn.flush()?,
                                Err(_) => txn.discard_pending(),
                            }
                        }
                        result
                    }
                    None if writes => {
                        let _guard = self.db.lock_writes();
                        let mut txn = Txn::new(mvcc.begin()?);
                        txn.set_budget(Budget::new(self.limits));
                        match Planner::new(&txn)
                            .plan(statement)
                            .and_then(|plan| execute(plan, &mut txn))
                        {
                            Ok(result) => {
                                txn.commit()?;
                                self.db.flush_if_durable()?;
                                Ok(result)
                            }
                            Err(error) => {
                                txn.rollback()?;
                                Err(error)
                            }
                        }
                    }
                    None => {
                        let mut txn = Txn::new(mvcc.begin_read_only()?);
                        txn.set_budget(Budget::new(self.limits));
                        let result = Planner::new(&txn)
                            .plan(statement)
                            .and_then(|plan| execute(plan, &mut txn));
                        txn.commit()?;
                        result
                    }
                }
            }
        }
    }
}
