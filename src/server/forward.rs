//! Forwarding writes from a follower to the leader over one long-lived `Raft.Forward` stream.
//!
//! A follower's clients queue their commands on the lane to the leader they know; a batcher
//! sends, in one message, everything that queued up while the last message was being sent, so
//! under load a follower makes one call per leader round instead of one per write. The leader
//! proposes the bytes as they are (it never decodes them) and answers each command, several per
//! message, once it is applied or refused.
//!
//! # Invariants
//! - A command is answered exactly once: with its outcome, or with what is known of its fate.
//!   One that never left the lane is `NotApplied` (safe to retry); one sent on a stream that
//!   broke before its answer is `Unknown`, unless the connection was never made.
//! - The bytes waiting on a lane are bounded ([`MAX_WAITING_BYTES`]), and so are the bytes the
//!   leader holds in proposals from one stream ([`MAX_IN_FLIGHT_BYTES`]).

use super::Error;
use super::context::Context;
use super::transport::{MAX_FRAME_BYTES, Transport};
use crate::grpc::pb;
use crate::raft::{Index, NodeId};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

/// The most bytes of commands that may wait on one lane for the leader; past it, writes are
/// refused as unavailable (nothing applied) until the leader catches up.
pub const MAX_WAITING_BYTES: usize = 128 << 20;
/// The most bytes of forwarded commands the leader holds proposed and unanswered for one
/// follower; past it, it reads no more from that follower's stream until some are answered.
pub const MAX_IN_FLIGHT_BYTES: usize = 128 << 20;
/// How long a lane with nothing to do stays open.
const IDLE: Duration = Duration::from_secs(30);
/// Batches sent ahead of the stream (the rest wait on the lane and go in the next batch).
const BATCHES_AHEAD: usize = 2;
/// Result messages the leader queues ahead of a slow follower.
const RESULTS_AHEAD: usize = 16;

/// What became of a forwarded command.
#[derive(Debug)]
pub enum Forwarded {
    /// Applied at `index` with this encoded outcome.
    Applied { index: Index, outcome: Vec<u8> },
    /// Certainly not applied: safe to send again.
    NotApplied,
    /// Refused as invalid.
    Invalid(String),
    /// Proposed; it may or may not be applied.
    Unknown(String),
}

type Reply = oneshot::Sender<Forwarded>;

/// A follower's lanes to leaders, one per leader at most.
pub struct Forwarder {
    lanes: Mutex<BTreeMap<NodeId, Arc<Lane>>>,
    /// How long a lane waits for the leader to answer anything while commands are out
    /// before it gives up on the stream (they become unknown) and a new lane is opened.
    answer_within: Duration,
}

impl Forwarder {
    /// No lanes yet; a lane gives up on a leader silent for `answer_within` while it waits.
    pub fn new(answer_within: Duration) -> Self {
        Self { lanes: Mutex::default(), answer_within }
    }

    /// Queues `command` for `leader` and returns where its answer will arrive; `None` when
    /// no address is known for the leader yet (nothing was queued).
    pub fn forward(
        &self,
        transport: &Transport,
        leader: NodeId,
        command: Vec<u8>,
        transaction: Option<u64>,
    ) -> Result<Option<oneshot::Receiver<Forwarded>>, Error> {
        // A larger command would break the stream for everyone on it; the leader's log
        // refuses it anyway.
        if command.len() > crate::raft::MAX_ENTRY_BYTES {
            return Err(Error::InvalidRequest(format!(
                "the write is {} MiB, more than a log entry may hold ({} MiB)",
                command.len() >> 20,
                crate::raft::MAX_ENTRY_BYTES >> 20
            )));
        }
        let (reply, answer) = oneshot::channel();
        let mut waiting = Waiting { command, transaction, reply };
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lane) = lanes.get(&leader) {
            match lane.push(waiting)? {
                None => return Ok(Some(answer)),
                Some(back) => waiting = back, // it closed: open another
            }
        }
        let Some(client) = transport.raft_client(leader) else { return Ok(None) };
        let lane = Arc::new(Lane::default());
        if lane.push(waiting)?.is_some() {
            return Ok(None); // a new lane is open, so this does not happen; nothing was queued
        }
        lanes.insert(leader, lane.clone());
        tokio::spawn(run_lane(client, leader, lane, self.answer_within));
        Ok(Some(answer))
    }
}

/// A command waiting on a lane.
struct Waiting {
    command: Vec<u8>,
    transaction: Option<u64>,
    reply: Reply,
}

/// The commands on their way to one leader.
#[derive(Default)]
struct Lane {
    queue: Mutex<Queue>,
    /// Rung when a command is queued or the lane closes.
    wake: Notify,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    waiting_bytes: usize,
    /// Sent and not yet answered, by id.
    sent: HashMap<u64, Reply>,
    next_id: u64,
    closed: bool,
}

impl Lane {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a command; gives it back if the lane has closed.
    fn push(&self, waiting: Waiting) -> Result<Option<Waiting>, Error> {
        let mut queue = self.queue();
        if queue.closed {
            return Ok(Some(waiting));
        }
        let bytes = waiting.command.len();
        if !queue.waiting.is_empty() && queue.waiting_bytes + bytes > MAX_WAITING_BYTES {
            return Err(Error::Unavailable(format!(
                "more than {} MiB of writes are waiting for the leader; try again shortly",
                MAX_WAITING_BYTES >> 20
            )));
        }
        queue.waiting_bytes += bytes;
        queue.waiting.push_back(waiting);
        drop(queue);
        self.wake.notify_one();
        Ok(None)
    }

    /// Takes the next batch (about a frame's worth, at least one command) and records its
    /// commands as sent. `None` once the lane has closed.
    async fn next_batch(&self) -> Option<pb::ForwardBatch> {
        loop {
            {
                let mut queue = self.queue();
                if queue.closed {
                    return None;
                }
                let mut commands = Vec::new();
                let mut bytes = 0;
                while let Some(next) = queue.waiting.front() {
                    if !commands.is_empty() && bytes + next.command.len() > MAX_FRAME_BYTES {
                        break;
                    }
                    let Some(Waiting { command, transaction, reply }) = queue.waiting.pop_front()
                    else {
                        break;
                    };
                    queue.waiting_bytes -= command.len();
                    if reply.is_closed() {
                        continue; // its client stopped waiting (and was told: unknown)
                    }
                    bytes += command.len();
                    let id = queue.next_id;
                    queue.next_id += 1;
                    queue.sent.insert(id, reply);
                    commands.push(pb::ForwardedCommand { id, command, transaction });
                }
                if !commands.is_empty() {
                    return Some(pb::ForwardBatch { commands });
                }
            }
            self.wake.notified().await;
        }
    }

    /// Delivers the leader's answers.
    fn answer(&self, results: Vec<pb::ForwardResult>) {
        let mut queue = self.queue();
        for result in results {
            if let Some(reply) = queue.sent.remove(&result.id) {
                let _ = reply.send(forwarded(result));
            }
        }
    }

    /// Whether commands are out and unanswered.
    fn awaiting_answers(&self) -> bool {
        !self.queue().sent.is_empty()
    }

    /// Closes the lane if it has nothing to do.
    fn close_if_idle(&self) -> bool {
        let mut queue = self.queue();
        queue.closed |= queue.waiting.is_empty() && queue.sent.is_empty();
        queue.closed
    }

    /// Closes the lane after its stream failed: what never left is not applied, what was
    /// sent is unknown unless the connection was never made.
    fn close(&self, leader: NodeId, status: &tonic::Status) {
        let (waiting, sent) = {
            let mut queue = self.queue();
            queue.closed = true;
            queue.waiting_bytes = 0;
            (std::mem::take(&mut queue.waiting), std::mem::take(&mut queue.sent))
        };
        self.wake.notify_one();
        for waiting in waiting {
            let _ = waiting.reply.send(Forwarded::NotApplied);
        }
        let never_sent = crate::grpc::wire::never_sent(status);
        for (_, reply) in sent {
            let _ = reply.send(if never_sent {
                Forwarded::NotApplied
            } else {
                Forwarded::Unknown(format!(
                    "lost contact with the leader (node {leader}) while it handled the write: {}",
                    status.message()
                ))
            });
        }
    }
}

/// Runs a lane's stream until it fails, goes silent while commands are out, or stays idle.
async fn run_lane(
    mut client: super::transport::RaftClient,
    leader: NodeId,
    lane: Arc<Lane>,
    answer_within: Duration,
) {
    let (batches, requests) = mpsc::channel(BATCHES_AHEAD);
    let mut batcher = {
        let lane = lane.clone();
        tokio::spawn(async move {
            while let Some(batch) = lane.next_batch().await {
                if batches.send(batch).await.is_err() {
                    return;
                }
            }
        })
    };
    let requests = tokio_stream::wrappers::ReceiverStream::new(requests);
    let opened = tokio::time::timeout(answer_within, client.forward(requests)).await;
    let status = match opened {
        Err(_) => tonic::Status::deadline_exceeded("the leader did not open the stream"),
        Ok(Err(status)) => status,
        Ok(Ok(response)) => {
            let mut responses = response.into_inner();
            let mut last_answer = Instant::now();
            loop {
                let wait = IDLE.min(answer_within);
                tokio::select! {
                    message = tokio::time::timeout(wait, responses.message()) => match message {
                        Err(_) if lane.close_if_idle() => break tonic::Status::cancelled("idle"),
                        Err(_) if lane.awaiting_answers() && last_answer.elapsed() >= answer_within => {
                            break tonic::Status::deadline_exceeded("the leader stopped answering");
                        }
                        Err(_) => {}
                        Ok(Ok(Some(results))) => {
                            last_answer = Instant::now();
                            lane.answer(results.results);
                        }
                        Ok(Ok(None)) => break tonic::Status::unavailable("the leader ended the stream"),
                        Ok(Err(status)) => break status,
                    },
                    _ = &mut batcher => break tonic::Status::unavailable("the stream stopped taking writes"),
                }
            }
        }
    };
    batcher.abort();
    lane.close(leader, &status);
}

fn forwarded(result: pb::ForwardResult) -> Forwarded {
    use pb::ForwardFailure as F;
    match F::try_from(result.failure).unwrap_or(F::Unknown) {
        F::None => Forwarded::Applied { index: result.index, outcome: result.outcome },
        F::NotApplied => Forwarded::NotApplied,
        // The leader halted with the command proposed: another leader may still apply it.
        F::Halted => Forwarded::Unknown(result.message),
        F::Invalid => Forwarded::Invalid(result.message),
        F::Unknown => Forwarded::Unknown(result.message),
    }
}

/// The leader's side: proposes every command read from a follower's stream and sends the
/// answers back as they come, several per message.
///
/// The stream ends when the node stops, and with `unauthenticated` once `peer` is no longer a
/// member; what is in flight is answered first.
pub fn serve(
    cx: Arc<Context>,
    peer: NodeId,
    mut requests: tonic::Streaming<pb::ForwardBatch>,
) -> mpsc::Receiver<Result<pb::ForwardResults, tonic::Status>> {
    let (results, stream) = mpsc::channel(RESULTS_AHEAD);
    tokio::spawn(async move {
        let mut refusal = None;
        let budget = Arc::new(Semaphore::new(MAX_IN_FLIGHT_BYTES >> 10));
        let (done, mut answers) = mpsc::unbounded_channel();
        let mut in_flight = 0usize;
        let mut reading = true;
        while reading || in_flight > 0 {
            tokio::select! {
                _ = cx.until_stopping(), if reading => reading = false,
                batch = requests.message(), if reading => {
                    let Ok(Some(batch)) = batch else {
                        reading = false;
                        continue;
                    };
                    if !cx.state.borrow().raft.config.contains(peer) {
                        reading = false;
                        refusal = Some(tonic::Status::unauthenticated(format!(
                            "node {peer} is no longer a member of this cluster"
                        )));
                        continue;
                    }
                    for command in batch.commands {
                        let kib = (command.command.len() >> 10).clamp(1, MAX_IN_FLIGHT_BYTES >> 10);
                        let Ok(permit) = budget.clone().acquire_many_owned(kib as u32).await else {
                            return;
                        };
                        if let Some(transaction) = command.transaction {
                            cx.activity.record(&[transaction], Instant::now());
                        }
                        in_flight += 1;
                        let (cx, done) = (cx.clone(), done.clone());
                        tokio::spawn(async move {
                            let result = cx.propose_bytes_on_leader(command.command).await;
                            let _ = done.send(answer(command.id, result));
                            drop(permit);
                        });
                    }
                }
                Some(first) = answers.recv() => {
                    // About a frame's worth of outcomes per message.
                    let mut bytes = first.outcome.len() + first.message.len();
                    let mut batch = vec![first];
                    while bytes < MAX_FRAME_BYTES {
                        let Ok(more) = answers.try_recv() else { break };
                        bytes += more.outcome.len() + more.message.len();
                        batch.push(more);
                    }
                    in_flight -= batch.len();
                    if results.send(Ok(pb::ForwardResults { results: batch })).await.is_err() {
                        return; // the follower went away
                    }
                }
            }
        }
        if let Some(refusal) = refusal {
            let _ = results.send(Err(refusal)).await;
        }
    });
    stream
}

/// The answer to a forwarded command, from its proposal's result.
fn answer(
    id: u64,
    result: Result<Option<(Index, crate::replica::Outcome)>, Error>,
) -> pb::ForwardResult {
    use pb::ForwardFailure as F;
    let failed = |failure: F, message: String| pb::ForwardResult {
        id,
        index: 0,
        outcome: Vec::new(),
        failure: failure as i32,
        message,
    };
    match result {
        Ok(Some((index, outcome))) => pb::ForwardResult {
            id,
            index,
            outcome: outcome.encode(),
            failure: F::None as i32,
            message: String::new(),
        },
        Ok(None) => failed(F::NotApplied, "leadership changed before it was applied".into()),
        Err(error @ (Error::InvalidRequest(_) | Error::Config(_))) => {
            failed(F::Invalid, error.to_string())
        }
        Err(error @ Error::Unavailable(_)) => failed(F::NotApplied, error.to_string()),
        // Halted after proposing it: the rest of the cluster may still apply it.
        Err(error @ Error::Halted(_)) => failed(F::Halted, error.to_string()),
        Err(error @ (Error::UnknownOutcome(_) | Error::Io(_))) => {
            failed(F::Unknown, error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(bytes: usize) -> (Waiting, oneshot::Receiver<Forwarded>) {
        let (reply, answer) = oneshot::channel();
        (Waiting { command: vec![7; bytes], transaction: Some(3), reply }, answer)
    }

    fn applied(id: u64, index: Index) -> pb::ForwardResult {
        pb::ForwardResult { id, index, outcome: vec![1], failure: 0, message: String::new() }
    }

    #[tokio::test]
    async fn a_batch_takes_what_waits_and_answers_find_their_commands() {
        let lane = Lane::default();
        let mut answers = Vec::new();
        for _ in 0..3 {
            let (command, answer) = waiting(10);
            assert!(lane.push(command).unwrap().is_none());
            answers.push(answer);
        }
        let batch = lane.next_batch().await.unwrap();
        let ids: Vec<u64> = batch.commands.iter().map(|c| c.id).collect();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(batch.commands[1].transaction, Some(3));
        // Answers come in any order, and an unknown id is ignored.
        lane.answer(vec![applied(2, 12), applied(9, 99), applied(0, 10)]);
        assert!(matches!(answers[0].try_recv(), Ok(Forwarded::Applied { index: 10, .. })));
        assert!(answers[1].try_recv().is_err(), "not answered yet");
        assert!(matches!(answers[2].try_recv(), Ok(Forwarded::Applied { index: 12, .. })));
        assert!(!lane.close_if_idle(), "one is still unanswered");
        lane.answer(vec![applied(1, 11)]);
        assert!(lane.close_if_idle());
        let (late, _) = waiting(1);
        assert!(lane.push(late).unwrap().is_some(), "a closed lane gives commands back");
    }

    #[tokio::test]
    async fn a_batch_stays_near_a_frame_and_takes_at_least_one() {
        let lane = Lane::default();
        let (big, _a) = waiting(MAX_FRAME_BYTES + 1);
        let (small, _b) = waiting(1);
        lane.push(big).unwrap();
        lane.push(small).unwrap();
        assert_eq!(lane.next_batch().await.unwrap().commands.len(), 1);
        assert_eq!(lane.next_batch().await.unwrap().commands.len(), 1);
    }

    #[tokio::test]
    async fn a_broken_stream_tells_sent_from_unsent_and_a_full_lane_refuses() {
        let lane = Lane::default();
        let (sent, mut sent_answer) = waiting(1);
        lane.push(sent).unwrap();
        lane.next_batch().await.unwrap();
        let (unsent, mut unsent_answer) = waiting(MAX_WAITING_BYTES);
        lane.push(unsent).unwrap();
        let (one_more, _) = waiting(1);
        assert!(matches!(lane.push(one_more), Err(Error::Unavailable(_))));
        lane.close(1, &tonic::Status::unavailable("connection reset"));
        assert!(matches!(sent_answer.try_recv(), Ok(Forwarded::Unknown(_))));
        assert!(matches!(unsent_answer.try_recv(), Ok(Forwarded::NotApplied)));
        assert!(lane.next_batch().await.is_none(), "a closed lane sends nothing");
    }

    #[tokio::test]
    async fn a_write_whose_client_stopped_waiting_is_never_sent() {
        let lane = Lane::default();
        let (abandoned, answer) = waiting(10);
        let (wanted, _kept) = waiting(20);
        lane.push(abandoned).unwrap();
        lane.push(wanted).unwrap();
        drop(answer); // its client timed out and was told the outcome is unknown
        let batch = lane.next_batch().await.unwrap();
        assert_eq!(batch.commands.len(), 1);
        assert_eq!(batch.commands[0].command.len(), 20);
        assert_eq!(lane.queue().waiting_bytes, 0);
    }

    #[test]
    fn proposal_results_map_to_what_the_follower_may_do() {
        let failure = |result| answer(5, result).failure;
        use pb::ForwardFailure as F;
        assert_eq!(failure(Ok(None)), F::NotApplied as i32);
        assert_eq!(failure(Err(Error::Unavailable("stopping".into()))), F::NotApplied as i32);
        assert_eq!(failure(Err(Error::InvalidRequest("too large".into()))), F::Invalid as i32);
        assert_eq!(failure(Err(Error::UnknownOutcome("timeout".into()))), F::Unknown as i32);
        assert_eq!(failure(Err(Error::Halted("diverged".into()))), F::Halted as i32);
        // A leader that halted with the command proposed may have it in its log: unknown.
        let halted = answer(5, Err(Error::Halted("diverged".into())));
        assert!(matches!(forwarded(halted), Forwarded::Unknown(_)));
        let not_applied = answer(5, Ok(None));
        assert!(matches!(forwarded(not_applied), Forwarded::NotApplied));
    }
}
