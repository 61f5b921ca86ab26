//! Which transactions clients still use, so the leader can roll back abandoned ones.
//!
//! Every node notes the read-write transactions its clients touch (reads included, which never
//! reach the leader) and reports them to the leader about once a second. The leader keeps, for
//! each open transaction, when it was last used; one unused for longer than the timeout is
//! rolled back through the log. A new leader starts every open transaction's clock afresh, so
//! a leader change only ever delays an abort.

use crate::storage::mvcc::Version;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Transaction use on one node.
#[derive(Default)]
pub struct Activity {
    /// Transactions touched here since the last report.
    touched: Mutex<BTreeSet<Version>>,
    /// On the leader: when each open transaction was last used.
    last_used: Mutex<BTreeMap<Version, Instant>>,
}

impl Activity {
    /// Notes that a client used transaction `version` on this node.
    pub fn touch(&self, version: Version) {
        self.touched.lock().unwrap_or_else(|p| p.into_inner()).insert(version);
        self.record(&[version], Instant::now());
    }

    /// Takes the transactions touched since the last call (to report to the leader).
    pub fn take_touched(&self) -> Vec<Version> {
        let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *touched).into_iter().collect()
    }

    /// Leader: records that transactions were used at `now`.
    pub fn record(&self, versions: &[Version], now: Instant) {
        let mut last_used = self.last_used.lock().unwrap_or_else(|p| p.into_inner());
        for version in versions {
            last_used.insert(*version, now);
        }
    }

    /// Leader: forgets all clocks (on gaining leadership everything starts afresh).
    pub fn reset(&self) {
        self.last_used.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Leader: of the open transactions, those unused for longer than `timeout` at `now`.
    /// Clocks of transactions seen for the first time start now; closed ones are forgotten.
    pub fn abandoned(&self, open: &[Version], timeout: Duration, now: Instant) -> Vec<Version> {
        let mut last_used = self.last_used.lock().unwrap_or_else(|p| p.into_inner());
        last_used.retain(|version, _| open.contains(version));
        open.iter()
            .filter(|version| {
                let used = *last_used.entry(**version).or_insert(now);
                now.duration_since(used) > timeout
            })
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transactions_unused_for_the_timeout_are_abandoned() {
        let activity = Activity::default();
        let timeout = Duration::from_secs(30);
        let start = Instant::now();
        let later = start + Duration::from_secs(31);
        assert!(activity.abandoned(&[1, 2], timeout, start).is_empty(), "clocks start now");
        activity.record(&[2], start + Duration::from_secs(10));
        assert_eq!(activity.abandoned(&[1, 2], timeout, later), vec![1]);
        // A closed transaction is forgotten; if it shows up again its clock restarts.
        assert!(activity.abandoned(&[2], timeout, later).is_empty());
        assert!(activity.abandoned(&[1, 2], timeout, later).is_empty());
        activity.touch(3);
        assert_eq!(activity.take_touched(), vec![3]);
        assert!(activity.take_touched().is_empty());
        activity.reset();
        assert!(activity.abandoned(&[1, 2], timeout, later).is_empty());
    }
}
