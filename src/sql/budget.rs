//! What one statement may cost.
//!
//! - **Bytes written and bytes held** ([`Limits`]): a statement that writes more than
//!   `write_bytes` of rows, or holds more than `hold_bytes` of rows in memory (rows collected
//!   for a write, sort buffers, join tables, groups, distinct sets), fails with
//!   [`Error::ResourceLimit`]. The counts follow from the data alone ([`Value::size`]), so in
//!   a replicated log every replica fails the same statement the same way: the limits travel
//!   in the log entry, fixed by the node that wrote it.
//! - **A deadline and cancellation**, for queries served by one node only (never in the log):
//!   checked as rows flow, so a query stops when its time is up or its client went away.
//!
//! Invariant: counters only grow within a statement; [`Budget::start_statement`] resets them.

use crate::sql::error::{Error, Result};
use crate::sql::types::Value;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::time::Instant;

/// How many rows pass between two checks of the deadline and cancellation.
const CHECK_EVERY: u32 = 1024;

/// Byte limits of one statement (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The most bytes of rows a statement may write.
    pub write_bytes: u64,
    /// The most bytes of rows a statement may hold in memory.
    pub hold_bytes: u64,
}

impl Limits {
    /// No limits (an embedded database, or tests).
    pub const NONE: Limits = Limits { write_bytes: u64::MAX, hold_bytes: u64::MAX };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::NONE
    }
}

/// The size of a row, as budgets count it.
pub fn row_size(row: &[Value]) -> u64 {
    row.iter().map(|v| v.size() as u64).sum::<u64>() + 16
}

/// A statement's budget (see the module docs). Interior mutability: execution reads through
/// shared references.
#[derive(Default)]
pub struct Budget {
    limits: Limits,
    written: Cell<u64>,
    held: Cell<u64>,
    /// When a query must stop (local queries only).
    deadline: Option<Instant>,
    /// Says whether the query's client went away (local queries only).
    cancelled: Option<Box<dyn Fn() -> bool + Send>>,
    /// Rows since the last deadline check.
    rows: Cell<u32>,
}

impl Budget {
    /// A budget with `limits` and no deadline.
    pub fn new(limits: Limits) -> Self {
        Self { limits, ..Self::default() }
    }

    /// Adds a deadline and a cancellation check (for a query served locally).
    pub fn with_deadline(
        mut self,
        deadline: Instant,
        cancelled: impl Fn() -> bool + Send + 'static,
    ) -> Self {
        self.deadline = Some(deadline);
        self.cancelled = Some(Box::new(cancelled));
        self
    }

    /// The most bytes of rows one statement may write.
    pub fn write_limit(&self) -> u64 {
        self.limits.write_bytes
    }

    /// Starts a statement: nothing written or held yet.
    pub fn start_statement(&self) {
        self.written.set(0);
        self.held.set(0);
        self.rows.set(0);
    }

    /// Counts `row` as written.
    pub fn write(&self, row: &[Value]) -> Result<()> {
        let written = self.written.get().saturating_add(row_size(row));
        self.written.set(written);
        if written > self.limits.write_bytes {
            return Err(Error::ResourceLimit(format!(
                "the statement writes more than {} bytes (the limit of one statement); split it",
                self.limits.write_bytes
            )));
        }
        Ok(())
    }

    /// Counts `row` as held in memory until the statement ends.
    pub fn hold(&self, row: &[Value]) -> Result<()> {
        let held = self.held.get().saturating_add(row_size(row));
        self.held.set(held);
        if held > self.limits.hold_bytes {
            return Err(Error::ResourceLimit(format!(
                "the statement holds more than {} bytes of rows in memory (the limit of one statement)",
                self.limits.hold_bytes
            )));
        }
        self.tick()
    }

    /// Counts a row passing by: every so often, checks the deadline and cancellation.
    pub fn tick(&self) -> Result<()> {
        let rows = self.rows.get() + 1;
        if rows < CHECK_EVERY {
            self.rows.set(rows);
            return Ok(());
        }
        self.rows.set(0);
        if self.cancelled.as_ref().is_some_and(|cancelled| cancelled()) {
            return Err(Error::Canceled(
                "the query's client went away, or the node is stopping".into(),
            ));
        }
        if self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(Error::Canceled("the query ran longer than the query timeout".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn limits_fail_the_statement_that_passes_them_and_reset_per_statement() {
        let budget = Budget::new(Limits { write_bytes: 100, hold_bytes: 200 });
        let row = vec![Value::String("x".repeat(40))];
        assert!(budget.write(&row).is_ok());
        assert!(matches!(budget.write(&row), Err(Error::ResourceLimit(_))));
        budget.start_statement();
        assert!(budget.write(&row).is_ok());
        for _ in 0..3 {
            budget.hold(&row).unwrap();
        }
        let error = budget.hold(&row).unwrap_err();
        assert_eq!(error.kind(), "resource_limit");
        assert!(error.is_deterministic());
    }

    #[test]
    fn a_deadline_or_a_gone_client_stops_a_query_within_a_check_interval() {
        let past = Budget::new(Limits::NONE).with_deadline(Instant::now(), || false);
        let stopped = (0..2 * CHECK_EVERY).map(|_| past.tick()).find(Result::is_err);
        assert_eq!(stopped.map(|e| e.unwrap_err().kind()), Some("query_canceled"));
        let later = Instant::now() + Duration::from_secs(60);
        let gone = Budget::new(Limits::NONE).with_deadline(later, || true);
        assert!((0..2 * CHECK_EVERY).any(|_| gone.tick().is_err()));
        let fine = Budget::new(Limits::NONE).with_deadline(later, || false);
        assert!((0..4 * CHECK_EVERY).all(|_| fine.tick().is_ok()));
    }
}
