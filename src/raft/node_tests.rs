//! Unit tests of the core on its own: messages in, `Ready` out, no network or disk.

use super::message::{
    AppendResult, Configuration, Entry, Envelope, HardState, Message, Payload, SnapshotMeta,
};
use super::node::{Node, Options, Ready, Recovered, Role};
use super::{Error, Index, NodeId, Term};

pub(super) fn recovered(
    voters: &[NodeId],
    term: Term,
    entries: &[Term],
    commit: Index,
) -> Recovered {
    Recovered {
        hard_state: HardState { term, vote: None, commit },
        snapshot: SnapshotMeta {
            index: 0,
            term: 0,
            config: Configuration::voters(voters.iter().copied()),
        },
        entries: entries
            .iter()
            .enumerate()
            .map(|(i, t)| Entry {
                index: i as Index + 1,
                term: *t,
                payload: Payload::Command(vec![i as u8]),
            })
            .collect(),
        applied: 0,
    }
}

pub(super) fn node(id: NodeId, recovered: Recovered) -> Node {
    Node::new(Options::new(id), recovered)
}

/// Takes a Ready and acknowledges it as handled.
pub(super) fn cycle(node: &mut Node) -> Ready {
    let ready = node.ready();
    node.advance();
    ready
}

fn envelope(from: NodeId, to: NodeId, term: Term, message: Message) -> Envelope {
    Envelope { from, to, term, message }
}

/// Makes node 1 (of voters 1..=3) leader of the next term by ticking and granting votes.
pub(super) fn make_leader(node: &mut Node) {
    while node.role() == Role::Follower {
        node.tick();
    }
    let pre_term = node.term() + 1;
    for voter in [2, 3] {
        node.step(envelope(voter, 1, pre_term, Message::PreVoteResponse { granted: true }))
            .unwrap();
    }
    let term = node.term();
    for voter in [2, 3] {
        node.step(envelope(voter, 1, term, Message::VoteResponse { granted: true })).unwrap();
    }
    assert_eq!(node.role(), Role::Leader);
}

#[test]
fn entries_replaced_during_a_sync_are_not_marked_stable() {
    // Regression (found by the simulator): a follower hands out entry 3 of term 1 to persist;
    // before the sync completes the leader replaces it with entry 3 of term 2. The old Ready's
    // completion must not mark index 3 stable, or the replacement is never written.
    let mut follower = node(2, recovered(&[1, 2, 3], 1, &[1, 1], 2));
    let append = |prev: Index, prev_term: Term, entries: Vec<(Index, Term)>| Message::Append {
        prev_index: prev,
        prev_term,
        entries: entries
            .into_iter()
            .map(|(index, term)| Entry { index, term, payload: Payload::Noop })
            .collect(),
        commit: 2,
    };
    follower.step(envelope(1, 2, 1, append(2, 1, vec![(3, 1)]))).unwrap();
    let first = follower.ready();
    assert_eq!(first.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(), vec![(3, 1)]);
    // While `first` is being synced, a new leader replaces entry 3.
    follower.step(envelope(3, 2, 2, append(2, 1, vec![(3, 2), (4, 2)]))).unwrap();
    follower.advance();
    let second = follower.ready();
    assert_eq!(
        second.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
        vec![(3, 2), (4, 2)]
    );
}

#[test]
fn proposals_between_readies_are_persisted_together() {
    let mut leader = node(1, recovered(&[1], 0, &[], 0));
    while leader.role() != Role::Leader {
        leader.tick();
    }
    cycle(&mut leader);
    for i in 0..100u8 {
        leader.propose(vec![i]).unwrap();
    }
    let ready = leader.ready();
    assert_eq!(ready.entries.len(), 100, "one batch, one sync (group commit)");
    leader.advance();
    // A single voter commits once its own entries are durable.
    let committed = cycle(&mut leader).committed;
    assert_eq!(committed.len(), 100);
}

#[test]
fn votes_and_acknowledgements_wait_for_durability() {
    let mut follower = node(2, recovered(&[1, 2, 3], 1, &[1], 1));
    follower
        .step(envelope(1, 2, 2, Message::Vote { last_index: 1, last_term: 1, transfer: false }))
        .unwrap();
    let ready = follower.ready();
    assert_eq!(ready.hard_state.map(|h| (h.term, h.vote)), Some((2, Some(1))));
    assert!(ready.messages.is_empty());
    assert!(matches!(ready.persisted_messages[0].message, Message::VoteResponse { granted: true }));
    follower.advance();
    let entries = vec![Entry { index: 2, term: 2, payload: Payload::Noop }];
    follower
        .step(envelope(
            1,
            2,
            2,
            Message::Append { prev_index: 1, prev_term: 1, entries, commit: 1 },
        ))
        .unwrap();
    let ready = follower.ready();
    assert!(matches!(
        ready.persisted_messages[0].message,
        Message::AppendResponse { result: AppendResult::Accepted { match_index: 2 } }
    ));
}

#[test]
fn entries_of_earlier_terms_commit_only_with_one_of_the_current_term() {
    // Node 1 has an entry of term 1 at index 2 that only it holds. As leader of term 2 it
    // appends a no-op at 3. A follower matching index 2 is a quorum for index 2, but index 2
    // is of an earlier term: nothing commits until index 3 is replicated.
    let mut leader = node(1, recovered(&[1, 2, 3], 1, &[1, 1], 1));
    make_leader(&mut leader);
    let term = leader.term();
    cycle(&mut leader);
    let accepted =
        |match_index| Message::AppendResponse { result: AppendResult::Accepted { match_index } };
    leader.step(envelope(2, 1, term, accepted(2))).unwrap();
    cycle(&mut leader);
    assert_eq!(
        leader.status().commit_index,
        1,
        "an earlier term's entry was committed by counting replicas"
    );
    leader.step(envelope(2, 1, term, accepted(3))).unwrap();
    cycle(&mut leader);
    assert_eq!(leader.status().commit_index, 3);
}

#[test]
fn a_follower_with_a_live_leader_ignores_disruptive_candidates() {
    let mut follower = node(2, recovered(&[1, 2, 3], 3, &[3], 1));
    follower.step(envelope(1, 2, 3, Message::Heartbeat { commit: 1, read_seq: 0 })).unwrap();
    cycle(&mut follower);
    // A candidate of a higher term, not sent by the leader: ignored, term unchanged.
    follower
        .step(envelope(3, 2, 4, Message::Vote { last_index: 5, last_term: 3, transfer: false }))
        .unwrap();
    assert_eq!(follower.term(), 3);
    assert!(follower.ready().persisted_messages.is_empty());
    follower.advance();
    // A transfer election is honoured.
    follower
        .step(envelope(3, 2, 4, Message::Vote { last_index: 5, last_term: 3, transfer: true }))
        .unwrap();
    assert_eq!(follower.term(), 4);
    // So is any candidate once the lease has expired.
    let mut follower = node(2, recovered(&[1, 2, 3], 3, &[3], 1));
    follower.step(envelope(1, 2, 3, Message::Heartbeat { commit: 1, read_seq: 0 })).unwrap();
    for _ in 0..super::ELECTION_TICKS {
        follower.tick();
    }
    follower
        .step(envelope(3, 2, 4, Message::Vote { last_index: 5, last_term: 3, transfer: false }))
        .unwrap();
    assert_eq!(follower.term(), 4);
}

#[test]
fn a_streamed_snapshot_is_installed_once_and_acknowledged_after_the_sync() {
    let mut follower = node(2, recovered(&[1, 2], 1, &[1, 1], 2));
    let meta = SnapshotMeta { index: 10, term: 1, config: Configuration::voters([1, 2]) };
    // From a deposed leader's term: not needed.
    assert!(!follower.install_snapshot(1, 0, meta.clone()).unwrap());
    assert!(follower.install_snapshot(1, 1, meta.clone()).unwrap());
    let ready = follower.ready();
    assert_eq!(ready.snapshot, Some(meta.clone()));
    assert!(ready.messages.is_empty(), "the acknowledgement waits for the log to record it");
    assert!(matches!(
        ready.persisted_messages[0].message,
        Message::AppendResponse { result: AppendResult::Accepted { match_index: 10 } }
    ));
    follower.advance();
    let status = follower.status();
    assert_eq!((status.commit_index, status.applied_index, status.first_index), (10, 10, 11));
    // The same state again covers nothing new: acknowledged at once, not installed.
    assert!(!follower.install_snapshot(1, 1, meta).unwrap());
    assert!(follower.ready().snapshot.is_none());
    // A node never installs its own.
    let other = SnapshotMeta { index: 20, term: 1, config: Configuration::voters([1, 2]) };
    assert!(follower.install_snapshot(2, 1, other).is_err());
}

#[test]
fn a_follower_behind_the_compacted_log_is_streamed_the_state_and_retried_after_a_failure() {
    let mut leader = node(1, recovered(&[1, 2, 3], 0, &[], 0));
    make_leader(&mut leader);
    cycle(&mut leader);
    for i in 0..10u8 {
        leader.propose(vec![i]).unwrap();
    }
    cycle(&mut leader);
    let term = leader.term();
    // Node 3 keeps up, so the entries commit; node 2 is away.
    leader
        .step(envelope(
            3,
            1,
            term,
            Message::AppendResponse { result: AppendResult::Accepted { match_index: 11 } },
        ))
        .unwrap();
    cycle(&mut leader);
    cycle(&mut leader);
    leader.compact(11).unwrap();
    cycle(&mut leader);
    // Node 2 comes back: its first answer finds the entries it needs compacted away.
    leader.step(envelope(2, 1, term, Message::HeartbeatResponse { read_seq: 0 })).unwrap();
    let ready = cycle(&mut leader);
    assert_eq!(ready.send_snapshots, vec![2]);
    assert!(leader.status().peers[&2].receiving_snapshot);
    // The transfer failed: no new one until the pause is over.
    leader.report_snapshot(2, None);
    assert!(!leader.status().peers[&2].receiving_snapshot);
    leader.step(envelope(2, 1, term, Message::HeartbeatResponse { read_seq: 0 })).unwrap();
    assert!(cycle(&mut leader).send_snapshots.is_empty());
    for _ in 0..super::SNAPSHOT_RETRY_TICKS {
        leader.tick();
        // Node 3 keeps the leader's quorum.
        leader.step(envelope(3, 1, term, Message::HeartbeatResponse { read_seq: 0 })).unwrap();
    }
    leader.step(envelope(2, 1, term, Message::HeartbeatResponse { read_seq: 0 })).unwrap();
    assert_eq!(cycle(&mut leader).send_snapshots, vec![2]);
    // Sent whole: the follower's acknowledgement of the install resumes appends.
    leader.report_snapshot(2, Some(11));
    leader
        .step(envelope(
            2,
            1,
            term,
            Message::AppendResponse { result: AppendResult::Accepted { match_index: 11 } },
        ))
        .unwrap();
    let status = leader.status();
    assert_eq!(status.peers[&2].match_index, 11);
    assert!(!status.peers[&2].receiving_snapshot);
}

#[test]
fn appends_are_bounded_by_bytes_and_a_large_entry_goes_alone() {
    let mut options = Options::new(1);
    options.max_append_bytes = 1000;
    options.max_entry_bytes = 5000;
    let mut leader = Node::new(options, recovered(&[1, 2, 3], 0, &[], 0));
    make_leader(&mut leader);
    cycle(&mut leader);
    let term = leader.term();
    leader
        .step(envelope(
            2,
            1,
            term,
            Message::AppendResponse { result: AppendResult::Accepted { match_index: 1 } },
        ))
        .unwrap();
    cycle(&mut leader);
    assert!(matches!(leader.propose(vec![0; 6000]), Err(Error::TooLarge { .. })));
    for _ in 0..10 {
        leader.propose(vec![7; 300]).unwrap();
    }
    leader.propose(vec![8; 3000]).unwrap();
    let ready = cycle(&mut leader);
    for message in &ready.messages {
        if let Message::Append { entries, .. } = &message.message {
            let bytes: usize = entries.iter().map(Entry::size).sum();
            assert!(
                entries.len() == 1 || bytes <= 1000,
                "{} entries, {bytes} bytes",
                entries.len()
            );
        }
    }
    let sizes: Vec<usize> = ready
        .messages
        .iter()
        .filter_map(|m| match &m.message {
            Message::Append { entries, .. } => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert!(sizes.len() >= 4, "the entries went in several appends: {sizes:?}");
}

#[test]
fn a_follower_that_answers_but_never_catches_up_shows_as_stalled() {
    let mut leader = node(1, recovered(&[1, 2, 3], 0, &[], 0));
    make_leader(&mut leader);
    cycle(&mut leader);
    leader.propose(vec![1]).unwrap();
    cycle(&mut leader);
    let term = leader.term();
    for _ in 0..30 {
        leader.tick();
        // It answers heartbeats but never acknowledges the entries.
        leader.step(envelope(2, 1, term, Message::HeartbeatResponse { read_seq: 0 })).unwrap();
        if leader.has_ready() {
            cycle(&mut leader);
        }
    }
    let peer = &leader.status().peers[&2];
    assert!(peer.stalled >= 30, "{peer:?}");
    assert_eq!(peer.last_contact, 0);
}

#[test]
fn compaction_needs_an_applied_index() {
    let mut leader = node(1, recovered(&[1], 0, &[], 0));
    assert!(matches!(leader.compact(5), Err(Error::InvalidRequest(_))));
    while leader.role() != Role::Leader {
        leader.tick();
    }
    for i in 0..10u8 {
        leader.propose(vec![i]).unwrap();
    }
    cycle(&mut leader);
    cycle(&mut leader);
    leader.compact(8).unwrap();
    let ready = cycle(&mut leader);
    assert_eq!(ready.compact.map(|m| m.index), Some(8));
    assert_eq!(
        ready.entries.first().map(|e| e.index),
        Some(9),
        "the checkpoint keeps the entries after it"
    );
    assert_eq!(leader.log().first_index(), 9);
}

#[test]
fn a_single_node_cluster_leads_commits_and_reads_alone() {
    let mut only = node(1, recovered(&[1], 0, &[], 0));
    for _ in 0..2 * super::ELECTION_TICKS {
        only.tick();
    }
    assert_eq!(only.role(), Role::Leader);
    let (index, _) = only.propose(b"x".to_vec()).unwrap();
    cycle(&mut only);
    cycle(&mut only);
    assert!(only.status().commit_index >= index);
    only.read_index(7).unwrap();
    let ready = cycle(&mut only);
    assert_eq!(ready.read_states.first().map(|r| r.request), Some(7));
}

#[test]
fn any_message_from_a_peer_is_handled_without_panicking() {
    // Random and malformed messages (wrong indexes, gaps, unknown peers, wild terms) in every
    // role: the node must never panic and must stay consistent.
    let mut rng = crate::raft::sim::Rng::new(7);
    for round in 0..300 {
        let mut node = node(1, recovered(&[1, 2, 3], 2, &[1, 2, 2], 2));
        if round % 3 == 1 {
            make_leader(&mut node);
        }
        for _ in 0..40 {
            let from = 2 + rng.next_u64() % 3; // includes a non-member
            let term = rng.next_u64() % 6;
            let index = rng.next_u64() % 8;
            let entries: Vec<Entry> = (0..rng.next_u64() % 4)
                .map(|i| Entry {
                    index: index + 1 + i * (rng.next_u64() % 2),
                    term: rng.next_u64() % 6,
                    payload: Payload::Noop,
                })
                .collect();
            let message = match rng.next_u64() % 12 {
                0 => Message::PreVote { last_index: index, last_term: term },
                1 => Message::PreVoteResponse { granted: rng.chance(50) },
                2 => Message::Vote { last_index: index, last_term: term, transfer: rng.chance(20) },
                3 => Message::VoteResponse { granted: rng.chance(50) },
                4 => Message::Append {
                    prev_index: index,
                    prev_term: rng.next_u64() % 6,
                    entries,
                    commit: rng.next_u64() % 10,
                },
                5 => Message::AppendResponse {
                    result: AppendResult::Accepted { match_index: rng.next_u64() % 10 },
                },
                6 => Message::AppendResponse {
                    result: AppendResult::Rejected {
                        rejected: index,
                        last_index: rng.next_u64() % 10,
                        conflict: Some((term, index)),
                    },
                },
                7 => {
                    Message::Heartbeat { commit: rng.next_u64() % 10, read_seq: rng.next_u64() % 5 }
                }
                8 => Message::HeartbeatResponse { read_seq: rng.next_u64() % 5 },
                9 => Message::ReadIndexResponse { request: 1, index: Some(index) },
                _ => Message::TimeoutNow,
            };
            let _ = node.step(envelope(from, 1, term, message));
            if rng.chance(5) {
                let config = Configuration::voters([1, 2, 3]);
                let _ = node.install_snapshot(from, term, SnapshotMeta { index, term, config });
            }
            if rng.chance(5) {
                node.report_snapshot(from, rng.chance(50).then_some(index));
            }
            if rng.chance(30) {
                node.tick();
            }
            if rng.chance(50) && node.has_ready() {
                cycle(&mut node);
            }
            let status = node.status();
            assert!(status.commit_index <= status.last_index);
            assert!(status.applied_index <= status.commit_index);
        }
        // Misrouted messages are errors, not panics.
        assert!(node.step(envelope(2, 9, 1, Message::TimeoutNow)).is_err());
    }
}

#[test]
fn a_replicating_follower_gets_at_most_the_window_of_appends_in_flight() {
    let mut leader = node(1, recovered(&[1, 2, 3], 0, &[], 0));
    make_leader(&mut leader);
    let appends_to = |ready: &Ready, to: NodeId| {
        ready
            .messages
            .iter()
            .chain(&ready.persisted_messages)
            .filter(|m| m.to == to && matches!(m.message, Message::Append { .. }))
            .count()
    };
    let term = leader.term();
    // The election no-op goes out; once node 2 accepts it, node 2 is in the replicate state.
    cycle(&mut leader);
    let accepted = Message::AppendResponse { result: AppendResult::Accepted { match_index: 1 } };
    leader.step(envelope(2, 1, term, accepted)).unwrap();
    cycle(&mut leader);
    // One proposal per Ready: each is pipelined as its own append until the window is full.
    let mut sent = 0;
    for i in 0..3 * super::MAX_INFLIGHT {
        leader.propose(vec![i as u8]).unwrap();
        sent += appends_to(&cycle(&mut leader), 2);
    }
    assert_eq!(sent, super::MAX_INFLIGHT, "no more appends than the window while none is acked");
    // An acknowledgement of everything opens the window again, and the rest goes out batched.
    let last = leader.status().last_index;
    let acked = Message::AppendResponse {
        result: AppendResult::Accepted { match_index: 1 + super::MAX_INFLIGHT as Index },
    };
    leader.step(envelope(2, 1, term, acked)).unwrap();
    let ready = cycle(&mut leader);
    let caught_up: Index = ready
        .messages
        .iter()
        .filter(|m| m.to == 2)
        .filter_map(|m| match &m.message {
            Message::Append { entries, .. } => entries.last().map(|e| e.index),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    assert_eq!(caught_up, last, "the backlog is sent once the window opens");
}

#[test]
fn appends_in_flight_are_resent_only_after_a_long_silence() {
    let mut leader = node(1, recovered(&[1, 2, 3], 0, &[], 0));
    make_leader(&mut leader);
    let term = leader.term();
    cycle(&mut leader);
    let accepted = Message::AppendResponse { result: AppendResult::Accepted { match_index: 1 } };
    leader.step(envelope(2, 1, term, accepted)).unwrap();
    cycle(&mut leader);
    let resent_entries =
        |ready: &Ready| {
            ready.messages.iter().filter(|m| m.to == 2).any(
                |m| matches!(&m.message, Message::Append { entries, .. } if !entries.is_empty()),
            )
        };
    leader.propose(vec![7]).unwrap();
    assert!(resent_entries(&cycle(&mut leader)), "the entry goes out");
    // A heartbeat answer while the append is in flight is normal: nothing is resent.
    let heartbeat = |leader: &mut Node| {
        let answer = Message::HeartbeatResponse { read_seq: 0 };
        leader.step(envelope(2, 1, term, answer)).unwrap();
        cycle(leader)
    };
    assert!(!resent_entries(&heartbeat(&mut leader)));
    // After a long silence the append is presumed lost and sent again.
    for _ in 0..leader.opts.election_ticks {
        leader.tick();
    }
    cycle(&mut leader);
    assert!(resent_entries(&heartbeat(&mut leader)), "a lost append is resent");
}

/// Committed entries are handed out in `Ready`s bounded in bytes, and only up to the limit
/// the driver sets: a slow state machine leaves them in the log, not in a queue.
#[test]
fn committed_entries_are_handed_out_within_bytes_and_the_apply_limit() {
    let mut options = Options::new(1);
    options.max_committed_bytes = 200;
    let mut only = Node::new(options, recovered(&[1], 0, &[], 0));
    while only.role() != Role::Leader {
        only.tick();
    }
    cycle(&mut only);
    only.limit_apply(5);
    for i in 0..10u8 {
        only.propose(vec![i; 40]).unwrap();
    }
    let mut handed = Vec::new();
    for _ in 0..10 {
        let ready = cycle(&mut only);
        let bytes: usize = ready.committed.iter().map(Entry::size).sum();
        assert!(ready.committed.len() <= 1 || bytes <= 200, "{bytes} bytes in one Ready");
        handed.extend(ready.committed.iter().map(|e| e.index));
    }
    assert_eq!(handed.last(), Some(&5), "held back at the limit: {handed:?}");
    assert!(only.status().commit_index >= 11);
    only.limit_apply(Index::MAX);
    while only.has_ready() {
        handed.extend(cycle(&mut only).committed.iter().map(|e| e.index));
    }
    assert_eq!(handed, (1..=11).collect::<Vec<_>>(), "each entry once, in order");
}

#[test]
fn absurd_terms_and_outsiders_cannot_disturb_a_node() {
    use crate::raft::{MAX_TERM, MAX_TERM_STEP};
    let heartbeat = || Message::Heartbeat { commit: 0, read_seq: 0 };
    let mut follower = node(2, recovered(&[1, 2, 3], 2, &[1, 2, 2], 2));
    follower.step(envelope(1, 2, 2, heartbeat())).unwrap();
    cycle(&mut follower);
    // A term that would overflow, past the ceiling, or too far past ours is refused and
    // changes nothing.
    for term in [u64::MAX, MAX_TERM + 1, 2 + MAX_TERM_STEP + 1] {
        assert!(follower.step(envelope(3, 2, term, heartbeat())).is_err());
        assert_eq!(follower.term(), 2);
        assert_eq!(follower.status().leader, Some(1));
    }
    // A node outside the configuration cannot start an election here, nor can a member that is
    // not our leader hand us one.
    let vote = Message::Vote { last_index: 9, last_term: 9, transfer: true };
    follower.step(envelope(99, 2, 5, vote)).unwrap();
    follower.step(envelope(99, 2, 5, Message::PreVote { last_index: 9, last_term: 9 })).unwrap();
    follower.step(envelope(3, 2, 2, Message::TimeoutNow)).unwrap();
    assert_eq!((follower.term(), follower.status().role), (2, Role::Follower));
    assert!(cycle(&mut follower).messages.is_empty(), "no vote was cast or requested");

    // The largest jump a member's message may make is taken, and elections go on after it.
    let far = 2 + MAX_TERM_STEP;
    follower.step(envelope(3, 2, far, heartbeat())).unwrap();
    assert_eq!(follower.term(), far);
    let mut asked = false;
    for _ in 0..100 {
        follower.tick();
        if follower.has_ready() {
            let ready = cycle(&mut follower);
            asked |= ready.messages.iter().any(|m| m.term == far + 1);
        }
    }
    assert!(asked, "the node campaigns past the jump");

    // A node at the ceiling never goes past it: it stops campaigning rather than wrapping.
    let mut top = node(2, recovered(&[1, 2, 3], MAX_TERM, &[1, 2, 2], 2));
    for _ in 0..100 {
        top.tick();
        if top.has_ready() {
            cycle(&mut top);
        }
    }
    assert_eq!(top.term(), MAX_TERM);
    assert_ne!(top.status().role, Role::Leader);
}
