//! Arbitrary bytes from a peer: whatever decodes as a message is stepped into a node, which
//! must neither panic nor break its own invariants (commit within the log and never going
//! back, applied within commit, the term within the ceiling).

use super::MAX_TERM;
use super::message::{AppendResult, Entry, Envelope, Message, Payload};
use super::node_tests::{cycle, make_leader, node, recovered};
use crate::encoding::value as codec;
use proptest::prelude::*;

/// A well-formed message from peer 2 or 3 to node 1, drawn from `kind` and three numbers.
fn message(kind: u8, a: u64, b: u64, c: u64) -> Envelope {
    // Mostly small terms, now and then the ceiling, past it, or the largest there is.
    let term = match b % 16 {
        0 => MAX_TERM,
        1 => MAX_TERM + 1,
        2 => u64::MAX,
        _ => b % 8,
    };
    let from = 2 + a % 2;
    let message = match kind % 10 {
        0 => Message::PreVote { last_index: a % 10, last_term: c % 8 },
        1 => Message::Vote { last_index: a % 10, last_term: c % 8, transfer: c.is_multiple_of(2) },
        2 => Message::VoteResponse { granted: c.is_multiple_of(2) },
        3 => Message::Append {
            prev_index: a % 6,
            prev_term: c % 4,
            entries: (0..c % 3)
                .map(|i| Entry {
                    index: a % 6 + 1 + i,
                    term: term.min(c % 4 + i),
                    payload: Payload::Noop,
                })
                .collect(),
            commit: c % 10,
        },
        4 => Message::AppendResponse { result: AppendResult::Accepted { match_index: c % 10 } },
        5 => Message::AppendResponse {
            result: AppendResult::Rejected { rejected: a % 6, last_index: c % 6, conflict: None },
        },
        6 => Message::Heartbeat { commit: c % 10, read_seq: a % 4 },
        7 => Message::HeartbeatResponse { read_seq: c % 4 },
        8 => Message::ReadIndexResponse { request: 1, index: Some(c % 10) },
        _ => Message::TimeoutNow,
    };
    Envelope { from, to: 1, term, message }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_message_bytes_never_panic_a_node_or_break_its_invariants(
        draws in prop::collection::vec((any::<u8>(), any::<u64>(), any::<u64>(), any::<u64>()), 1..24),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        noise in prop::collection::vec(any::<u8>(), 0..48),
        leader in any::<bool>(),
    ) {
        let mut node = node(1, recovered(&[1, 2, 3], 2, &[1, 2, 2], 2));
        if leader {
            make_leader(&mut node);
        }
        let mut commit = node.status().commit_index;
        for (i, (kind, a, b, c)) in draws.iter().enumerate() {
            // A well-formed message with some bytes changed, or, now and then, plain noise.
            let mut bytes = codec::encode(&message(*kind, *a, *b, *c));
            for (at, byte) in &edits {
                let at = at.index(bytes.len());
                bytes[at] ^= byte;
            }
            if i % 4 == 3 {
                bytes = noise.clone();
            }
            if let Ok(envelope) = codec::decode::<Envelope>(&bytes) {
                let _ = node.step(envelope);
            }
            node.tick();
            if node.has_ready() {
                cycle(&mut node);
            }
            let status = node.status();
            prop_assert!(status.commit_index <= status.last_index);
            prop_assert!(status.applied_index <= status.commit_index);
            prop_assert!(status.term <= MAX_TERM);
            prop_assert!(status.commit_index >= commit, "the commit index went back");
            commit = status.commit_index;
        }
    }
}
