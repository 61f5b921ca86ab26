//! A leader's view of each follower's replication (as in etcd's `tracker.Progress`).
//!
//! A follower is in one of three states:
//! - `Probe`: the leader does not know where their logs match; it sends one append at a time
//!   and moves back on each rejection (using the follower's hints).
//! - `Replicate`: the logs match up to `match_index`; the leader streams appends, optimistically
//!   advancing `next_index`, with at most `max_inflight` appends unacknowledged.
//! - `Snapshot`: the follower needs entries the leader compacted; the driver streams it the
//!   state machine's state and reports how the transfer ended.

use super::{Index, Ticks};

/// Where a follower is in replication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicationState {
    /// Looking for the point where the logs match; one append in flight at most.
    Probe,
    /// Streaming appends.
    Replicate,
    /// A snapshot is being streamed to it (by the driver).
    Snapshot {
        /// Ticks since the transfer started.
        elapsed: Ticks,
    },
}

/// The leader's record of one follower.
#[derive(Clone, Debug)]
pub struct Progress {
    /// The highest index known to match the leader's log.
    pub match_index: Index,
    /// The next index to send.
    pub next_index: Index,
    /// The replication state.
    pub state: ReplicationState,
    /// Appends sent and not yet acknowledged (bounded by the flow-control window).
    pub inflight: usize,
    /// In `Probe`, an append is outstanding: wait for its answer (or a heartbeat answer).
    pub probe_sent: bool,
    /// The follower answered since the last check-quorum round.
    pub recent_active: bool,
    /// Ticks since the follower last answered.
    pub last_contact: Ticks,
    /// The highest read round the follower acknowledged.
    pub read_ack: u64,
    /// Ticks since the last acknowledgement while appends were in flight: long silence means
    /// an append was lost.
    pub stalled: Ticks,
    /// Ticks the follower has been behind without its match index moving.
    pub lagging: Ticks,
    /// Ticks before another snapshot transfer may start (after one failed).
    pub snapshot_pause: Ticks,
}

impl Progress {
    /// A fresh record for a follower, probing from just after the leader's last entry.
    pub fn new(last_index: Index) -> Self {
        Self {
            match_index: 0,
            next_index: last_index + 1,
            state: ReplicationState::Probe,
            inflight: 0,
            probe_sent: false,
            recent_active: false,
            last_contact: 0,
            read_ack: 0,
            stalled: 0,
            lagging: 0,
            snapshot_pause: 0,
        }
    }

    /// Records an acknowledged match. Returns whether it moved forward.
    pub fn accept(&mut self, match_index: Index) -> bool {
        self.inflight = self.inflight.saturating_sub(1);
        self.stalled = 0;
        self.probe_sent = false;
        let advanced = match_index > self.match_index;
        if advanced {
            self.match_index = match_index;
            self.lagging = 0;
        }
        self.next_index = self.next_index.max(self.match_index + 1);
        if matches!(self.state, ReplicationState::Probe | ReplicationState::Snapshot { .. }) {
            self.state = ReplicationState::Replicate;
            self.inflight = 0;
        }
        advanced
    }

    /// Handles a rejection of the append after `rejected`, moving `next_index` back to
    /// `hinted_next`. Returns false for a stale rejection (of an append already superseded).
    pub fn reject(&mut self, rejected: Index, hinted_next: Index) -> bool {
        match self.state {
            // In Replicate, a rejection of an index already matched is stale.
            ReplicationState::Replicate if rejected <= self.match_index => return false,
            // In Probe, only the answer to the outstanding probe counts.
            ReplicationState::Probe if rejected + 1 != self.next_index => return false,
            ReplicationState::Snapshot { .. } => return false,
            _ => {}
        }
        self.next_index =
            hinted_next.clamp(self.match_index + 1, self.next_index.max(self.match_index + 1));
        self.state = ReplicationState::Probe;
        self.inflight = 0;
        self.probe_sent = false;
        true
    }

    /// Whether another append may be sent now.
    pub fn can_send(&self, max_inflight: usize) -> bool {
        match self.state {
            ReplicationState::Probe => !self.probe_sent,
            ReplicationState::Replicate => self.inflight < max_inflight,
            ReplicationState::Snapshot { .. } => false,
        }
    }

    /// Records an append sent with its last entry at `last_sent` (0 for none).
    pub fn sent(&mut self, last_sent: Option<Index>) {
        match self.state {
            ReplicationState::Probe => self.probe_sent = true,
            ReplicationState::Replicate => {
                if let Some(last) = last_sent {
                    self.next_index = last + 1;
                    self.inflight += 1;
                }
            }
            ReplicationState::Snapshot { .. } => {}
        }
    }

    /// A snapshot transfer starts.
    pub fn start_snapshot(&mut self) {
        self.state = ReplicationState::Snapshot { elapsed: 0 };
        self.inflight = 0;
        self.probe_sent = false;
    }

    /// The transfer ended: sent whole up to `index` (probe from just after it; the follower
    /// confirms once installed), or failed (probe again after `pause` ticks, which leads to a
    /// new transfer if the follower still needs one).
    pub fn finish_snapshot(&mut self, sent: Option<Index>, pause: Ticks) {
        if !matches!(self.state, ReplicationState::Snapshot { .. }) {
            return;
        }
        self.state = ReplicationState::Probe;
        self.probe_sent = false;
        match sent {
            Some(index) => self.next_index = self.next_index.max(index + 1),
            None => self.snapshot_pause = pause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_then_replicate_with_a_window() {
        let mut p = Progress::new(10);
        assert!(p.can_send(2));
        p.sent(Some(11));
        assert!(!p.can_send(2), "one probe at a time");
        assert!(p.accept(10));
        assert_eq!(p.state, ReplicationState::Replicate);
        p.sent(Some(15));
        p.sent(Some(20));
        assert_eq!(p.next_index, 21);
        assert!(!p.can_send(2), "window full");
        p.accept(15);
        assert!(p.can_send(2));
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(10);
        p.accept(8);
        p.sent(Some(12));
        assert!(!p.reject(5, 3), "already matched beyond it");
        assert!(p.reject(12, 10));
        assert_eq!((p.next_index, p.state.clone()), (10, ReplicationState::Probe));
        assert!(!p.reject(11, 9), "not the outstanding probe");
        // A hint never moves next_index below the match or above where it was.
        assert!(p.reject(9, 1));
        assert_eq!(p.next_index, 9);
    }
}
