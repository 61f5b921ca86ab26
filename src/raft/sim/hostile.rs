//! Hostile messages for the simulated network: variants of real messages that a node must
//! refuse or shrug off, and that authentication cannot keep out because they come from a
//! member (or claim no member at all). Lies a member could tell in a well-formed message are
//! not among them: Raft trusts its members, and the transport admits only them.

use super::Rng;
use crate::raft::{Entry, Envelope, MAX_TERM, MAX_TERM_STEP, Message, NodeId};

/// An id no simulated node ever has.
pub const OUTSIDER: NodeId = 1_000_000;

/// A hostile variant of `envelope`, and the node it is delivered to; `None` when the draw has
/// nothing to corrupt in this message. `members` are the nodes a misrouted copy may reach.
pub fn variant(
    envelope: &Envelope,
    rng: &mut Rng,
    members: &[NodeId],
) -> Option<(NodeId, Envelope)> {
    let mut bad = envelope.clone();
    match rng.next_u64() % 4 {
        // A term past the ceiling, or too far past the sender's (a wrapped or forged counter).
        0 => {
            bad.term = match rng.next_u64() % 3 {
                0 => MAX_TERM + 1,
                1 => envelope.term + MAX_TERM_STEP + 1 + rng.next_u64() % 1000,
                _ => u64::MAX,
            }
        }
        // Delivered to a node it was not meant for.
        1 => {
            let others: Vec<NodeId> =
                members.iter().copied().filter(|id| ![bad.to, bad.from].contains(id)).collect();
            let to = *others.get(rng.next_u64() as usize % others.len().max(1))?;
            return Some((to, bad));
        }
        // An election started by a node outside the configuration.
        2 => {
            bad.from = OUTSIDER;
            bad.term = envelope.term + 1;
            bad.message = match rng.next_u64() % 3 {
                0 => Message::PreVote { last_index: u64::MAX / 2, last_term: bad.term },
                1 => {
                    Message::Vote { last_index: u64::MAX / 2, last_term: bad.term, transfer: true }
                }
                _ => Message::TimeoutNow,
            };
        }
        // An append whose entries do not follow on, go back in term, or pass the sender's.
        _ => {
            let Message::Append { entries, .. } = &mut bad.message else { return None };
            let first: &mut Entry = entries.first_mut()?;
            match rng.next_u64() % 3 {
                0 => first.index += 1 + rng.next_u64() % 5,
                1 => first.term = envelope.term + 1 + rng.next_u64() % 5,
                _ => {
                    let last = entries.last_mut()?;
                    if last.term == 0 {
                        return None;
                    }
                    // A later entry of an earlier term than the first.
                    last.term = 0;
                    if entries.len() < 2 {
                        return None;
                    }
                }
            }
        }
    }
    Some((bad.to, bad))
}
