//! The statement clock: the time `now()` and `CURRENT_TIMESTAMP` stand for while a statement
//! is planned. SQL reads no clock of its own: a replicated statement is given the time its log
//! entry carries, so every replica plans the same constant; a read is given its node's time.
//!
//! The time is set for the current thread around planning ([`with_time`]); the planner turns
//! `now()` into a constant, so execution never asks. Without a time, `now()` is an error, not
//! the wall clock: a path that forgot to set it fails loudly instead of diverging.

use super::error::{Error, Result};
use std::cell::Cell;

thread_local! {
    static NOW: Cell<Option<i64>> = const { Cell::new(None) };
}

/// Runs `f` with `now` (microseconds since 1970, UTC) as the statement time, restoring the
/// previous time afterwards (so nested calls are safe).
pub fn with_time<R>(now: Option<i64>, f: impl FnOnce() -> R) -> R {
    /// Puts the previous time back when dropped, also if `f` panics (a pool thread goes on).
    struct Restore(Option<i64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            NOW.with(|cell| cell.set(self.0));
        }
    }
    let _restore = Restore(NOW.with(|cell| cell.replace(now)));
    f()
}

/// The statement time, as set by [`with_time`].
pub fn now() -> Result<i64> {
    NOW.with(Cell::get).ok_or_else(|| {
        Error::Invalid("now() is not available here: the statement was given no time".into())
    })
}

/// The wall clock in microseconds since 1970 (for a node fixing the time of what it proposes
/// or reads; never called while applying the log).
pub fn wall_clock() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_scoped_and_nests() {
        assert!(now().is_err());
        with_time(Some(5), || {
            assert_eq!(now(), Ok(5));
            with_time(Some(7), || assert_eq!(now(), Ok(7)));
            assert_eq!(now(), Ok(5));
        });
        assert!(now().is_err());
    }
}
