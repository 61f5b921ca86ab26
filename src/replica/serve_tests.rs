//! The replica's request handling against a fake consensus: a state machine applied in place,
//! with proposals and read indexes counted and a proposal's fate chosen by the test. No Raft,
//! no gRPC.

use super::*;
use crate::raft::{Configuration, Entry, Payload};
use crate::replica::Consistency;
use crate::replica::StateMachine;
use crate::replica::activity::Activity;
use crate::replica::{ServeOptions, proof};
use crate::sql::budget::Limits;
use crate::sql::types::Value;
use crate::storage::ReplicaStore;
use crate::storage::mvcc::Version;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// What the fake does with the next proposal.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// Applies it and answers.
    Apply,
    /// Applies it, then loses the answer (a leader lost after the commit).
    ApplyThenLose,
    /// Refuses it before proposing (no quorum).
    Refuse,
}

/// Consensus of one: every proposal is applied at once, at the next index.
struct Fake {
    machine: Mutex<StateMachine>,
    applied: watch::Sender<Index>,
    fates: Mutex<VecDeque<Fate>>,
    /// Whether applying publishes the applied index at once (the node's applier publishes
    /// it after a batch of entries).
    publish: std::sync::atomic::AtomicBool,
    proposals: AtomicUsize,
    read_indexes: AtomicUsize,
}

impl Fake {
    fn new() -> Self {
        let store = Arc::new(ReplicaStore::memory());
        let machine = StateMachine::open(store, Configuration::default()).unwrap();
        Fake {
            applied: watch::channel(machine.applied()).0,
            machine: Mutex::new(machine),
            fates: Mutex::new(VecDeque::new()),
            publish: std::sync::atomic::AtomicBool::new(true),
            proposals: AtomicUsize::new(0),
            read_indexes: AtomicUsize::new(0),
        }
    }

    fn apply(&self, command: Vec<u8>) -> (Index, Outcome) {
        let mut machine = self.machine.lock().unwrap();
        let index = machine.applied() + 1;
        let entry = Entry { index, term: 1, payload: Payload::Command(command) };
        let outcome = machine.apply(&entry).unwrap();
        machine.commit().unwrap();
        if self.publish.load(Ordering::SeqCst) {
            self.applied.send_replace(index);
        }
        (index, outcome)
    }
}

impl Consensus for Fake {
    async fn propose(
        &self,
        command: Vec<u8>,
        _transaction: Option<Version>,
    ) -> Result<(Index, Outcome), Error> {
        self.proposals.fetch_add(1, Ordering::SeqCst);
        let fate = self.fates.lock().unwrap().pop_front().unwrap_or(Fate::Apply);
        match fate {
            Fate::Apply => Ok(self.apply(command)),
            Fate::ApplyThenLose => {
                self.apply(command);
                Err(Error::UnknownOutcome("the leader was lost".into()))
            }
            Fate::Refuse => Err(Error::Unavailable("no quorum".into())),
        }
    }

    async fn read_index(&self) -> Result<Index, Error> {
        self.read_indexes.fetch_add(1, Ordering::SeqCst);
        Ok(self.applied())
    }

    async fn wait_applied(&self, index: Index, _deadline: Instant) -> Result<(), Error> {
        match self.applied() >= index {
            true => Ok(()),
            false => Err(Error::Unavailable(format!("index {index} is not applied"))),
        }
    }

    fn applied(&self) -> Index {
        *self.applied.borrow()
    }

    fn running(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// A replica on a fake whose log has set the session key.
fn replica() -> Arc<Replica<Fake>> {
    let fake = Arc::new(Fake::new());
    let key = proof::new_key().unwrap();
    fake.apply(Command::SetSessionKey { key: key.clone() }.encode());
    let state = {
        let machine = fake.machine.lock().unwrap();
        (machine.database(), machine.position())
    };
    let options = ServeOptions {
        request_timeout: Duration::from_secs(5),
        query_timeout: Duration::from_secs(5),
        max_queries: 4,
        statement_limits: Limits::NONE,
    };
    let replica = Replica::new(
        fake,
        state,
        watch::channel(Some(Arc::new(key))).1,
        Arc::new(Activity::default()),
        options,
        watch::channel(false).1,
    );
    Arc::new(replica)
}

/// A new request of `client` (each with its own number: the log applies a request once).
fn settings(client: u64) -> Settings {
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let sequence = SEQUENCE.fetch_add(1, Ordering::SeqCst);
    Settings { client, sequence, ..Settings::default() }
}

/// A script's last piece.
fn last(text: &[u8]) -> Chunk {
    Chunk { text: text.to_vec(), last: true }
}

/// A script's piece, with more to come.
fn piece(text: &[u8]) -> Chunk {
    Chunk { text: text.to_vec(), last: false }
}

/// Runs a whole script and returns everything the replica sent.
async fn run(replica: &Arc<Replica<Fake>>, settings: Settings, sql: &str) -> Vec<Response> {
    let (out, mut responses) = mpsc::channel(1024);
    replica.run(settings, last(sql.as_bytes()), tokio_stream::empty(), out).await;
    let mut all = Vec::new();
    while let Ok(batch) = responses.try_recv() {
        all.extend(batch);
    }
    all
}

/// The statement results among `responses`: what each was (its result's or error's kind, or
/// a query's row count), its end offset and its log run.
fn results(responses: &[Response]) -> Vec<(String, u64, u64)> {
    let mut found = Vec::new();
    for response in responses {
        match response {
            Response::Result { outcome, end, part, .. } => {
                let what = match outcome {
                    Ok(result) => format!("{result:?}").split([' ', '{']).next().unwrap().into(),
                    Err(error) => error.kind.clone(),
                };
                found.push((what, *end, *part));
            }
            Response::QueryEnd { rows, end, .. } => found.push((format!("rows {rows}"), *end, 0)),
            _ => {}
        }
    }
    found
}

/// The rows the queries among `responses` returned.
fn rows(responses: &[Response]) -> Vec<Vec<Value>> {
    let mut all = Vec::new();
    for response in responses {
        if let Response::Rows(rows) = response {
            all.extend(rows.iter().cloned());
        }
    }
    all
}

/// The session the replica last sent.
fn session(responses: &[Response]) -> Option<(Transaction, Vec<u8>)> {
    responses.iter().rev().find_map(|response| match response {
        Response::Session(session) => Some(session.clone()),
        _ => None,
    })?
}

fn text(s: &str) -> Value {
    Value::String(s.into())
}

#[tokio::test]
async fn writes_in_a_row_are_one_proposal_and_reads_wait_for_a_read_index() {
    let replica = replica();
    let fake = &replica.consensus;
    let script = "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'); \
                  INSERT INTO t VALUES (2, 'b'); SELECT v FROM t WHERE id = 2; SELECT v FROM t";
    let responses = run(&replica, settings(1), script).await;
    let results = results(&responses);
    let parts: Vec<u64> = results.iter().map(|(_, _, part)| *part).collect();
    assert_eq!(parts, [1, 1, 1, 0, 0], "three writes in one log run: {results:?}");
    let ends: Vec<u64> = results.iter().map(|(_, end, _)| *end).collect();
    assert!(ends.windows(2).all(|w| w[0] < w[1]) && ends[4] == script.len() as u64);
    assert_eq!(results[3].0, "rows 1");
    assert_eq!(rows(&responses), [[text("b")], [text("a")], [text("b")]]);
    assert_eq!(fake.proposals.load(Ordering::SeqCst), 1);
    assert_eq!(fake.read_indexes.load(Ordering::SeqCst), 1, "reads sent together share one");
    assert_eq!(session(&responses), None, "autocommit leaves no transaction open");

    let stale = Settings { consistency: Consistency::Stale, ..settings(1) };
    let responses = run(&replica, stale, "SELECT v FROM t WHERE id = 1").await;
    assert_eq!(rows(&responses), [[text("a")]]);
    assert_eq!(fake.read_indexes.load(Ordering::SeqCst), 1, "a stale read asks for no barrier");
}

#[tokio::test]
async fn a_read_that_arrives_after_a_read_index_was_asked_for_asks_again() {
    let replica = replica();
    let fake = &replica.consensus;
    run(&replica, settings(1), "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await;
    // Two reads in the first piece, then two pieces of one read each: the reads of the first
    // piece were sent before the first read index was asked for, the later ones were not (a
    // write acknowledged in between must be visible to them).
    let first = piece(b"SELECT id FROM t; SELECT COUNT(*) FROM t;");
    let rest = [piece(b"SELECT id FROM t WHERE id = 1;"), last(b" SELECT COUNT(*) FROM t")];
    let input = tokio_stream::iter(rest.map(Ok));
    let (out, mut responses) = mpsc::channel(1024);
    let before = fake.read_indexes.load(Ordering::SeqCst);
    replica.run(settings(1), first, input, out).await;
    assert_eq!(fake.read_indexes.load(Ordering::SeqCst), before + 3);
    let mut ended = 0;
    while let Ok(batch) = responses.try_recv() {
        ended += batch.iter().filter(|r| matches!(r, Response::QueryEnd { .. })).count();
    }
    assert_eq!(ended, 4);
}

#[tokio::test]
async fn a_transaction_goes_through_the_log_whole_and_reads_its_own_writes() {
    let replica = replica();
    let fake = &replica.consensus;
    run(&replica, settings(1), "CREATE TABLE t (id INT PRIMARY KEY)").await;
    let before = fake.proposals.load(Ordering::SeqCst);
    let responses = run(
        &replica,
        settings(1),
        "BEGIN; INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); COMMIT",
    )
    .await;
    assert_eq!(fake.proposals.load(Ordering::SeqCst), before + 1, "{:?}", results(&responses));

    // A read inside the transaction cuts it into two entries, and sees the first one's write
    // (which no one else sees before COMMIT) without a read index.
    let reads = fake.read_indexes.load(Ordering::SeqCst);
    let script = "BEGIN; INSERT INTO t VALUES (3); SELECT COUNT(*) FROM t; COMMIT";
    let responses = run(&replica, settings(1), script).await;
    assert_eq!(rows(&responses), [[Value::Integer(3)]]);
    assert_eq!(fake.proposals.load(Ordering::SeqCst), before + 3);
    assert_eq!(fake.read_indexes.load(Ordering::SeqCst), reads);
    let kinds: Vec<String> = results(&responses).into_iter().map(|(kind, _, _)| kind).collect();
    assert_eq!(kinds, ["Begin", "Insert", "rows 1", "Commit"]);
    assert_eq!(session(&responses), None);
}

#[tokio::test]
async fn a_session_continues_only_for_its_client_and_with_its_proof() {
    let replica = replica();
    run(&replica, settings(1), "CREATE TABLE t (id INT PRIMARY KEY)").await;
    let responses = run(&replica, settings(7), "BEGIN; INSERT INTO t VALUES (1)").await;
    let (txn, proof) = session(&responses).expect("an open transaction");
    assert!(matches!(txn, Transaction::ReadWrite { .. }));

    let carried = |client, proof: Vec<u8>| Settings {
        transaction: Some(txn.clone()),
        proof,
        ..settings(client)
    };
    let mut forged = proof.clone();
    forged[0] ^= 1;
    for (client, proof) in [(8, proof.clone()), (7, forged), (7, Vec::new())] {
        let responses = run(&replica, carried(client, proof), "COMMIT").await;
        assert!(
            matches!(responses.as_slice(), [Response::Refused(Error::InvalidRequest(_))]),
            "{responses:?}"
        );
    }
    let responses = run(&replica, carried(7, proof), "INSERT INTO t VALUES (2); COMMIT").await;
    let kinds: Vec<String> = results(&responses).into_iter().map(|(kind, _, _)| kind).collect();
    assert_eq!(kinds, ["Insert", "Commit"]);
    let responses = run(&replica, settings(9), "SELECT COUNT(*) FROM t").await;
    assert_eq!(rows(&responses), [[Value::Integer(2)]]);
}

#[tokio::test]
async fn a_write_of_unknown_outcome_or_refused_ends_the_script() {
    let replica = replica();
    let fake = &replica.consensus;
    run(&replica, settings(1), "CREATE TABLE t (id INT PRIMARY KEY)").await;
    let script = "INSERT INTO t VALUES (1); SELECT COUNT(*) FROM t; INSERT INTO t VALUES (2)";
    for (fate, kind, applied) in
        [(Fate::ApplyThenLose, "outcome_unknown", 1), (Fate::Refuse, "unavailable", 0)]
    {
        run(&replica, settings(1), "DELETE FROM t").await;
        fake.fates.lock().unwrap().push_back(fate);
        let proposals = fake.proposals.load(Ordering::SeqCst);
        let responses = run(&replica, settings(1), script).await;
        let results = results(&responses);
        assert_eq!(results.len(), 1, "nothing runs after it: {results:?}");
        assert_eq!(results[0].0, kind);
        assert_eq!(fake.proposals.load(Ordering::SeqCst), proposals + 1);
        // The client resumes after the last result it got, so the failed write is its result.
        assert_eq!(results[0].1, "INSERT INTO t VALUES (1);".len() as u64);
        let responses = run(&replica, settings(2), "SELECT COUNT(*) FROM t").await;
        assert_eq!(rows(&responses), [[Value::Integer(applied)]], "{fate:?}");
    }
}

#[tokio::test]
async fn a_read_only_transaction_reads_its_snapshot_wherever_it_continues() {
    let replica = replica();
    run(&replica, settings(1), "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await;
    let proposals = replica.consensus.proposals.load(Ordering::SeqCst);
    let responses = run(&replica, settings(3), "BEGIN READ ONLY").await;
    let (txn, proof) = session(&responses).expect("a read-only transaction");
    assert!(matches!(txn, Transaction::ReadOnly { .. }));
    run(&replica, settings(4), "INSERT INTO t VALUES (2)").await;
    let carried = Settings { transaction: Some(txn), proof, ..settings(3) };
    let responses = run(&replica, carried, "SELECT COUNT(*) FROM t; COMMIT").await;
    assert_eq!(rows(&responses), [[Value::Integer(1)]], "the snapshot predates the insert");
    assert_eq!(session(&responses), None, "COMMIT ends it");
    // BEGIN READ ONLY, its read and its COMMIT never went through the log.
    assert_eq!(replica.consensus.proposals.load(Ordering::SeqCst), proposals + 1);
}

#[tokio::test]
async fn a_retried_request_is_applied_once_and_answered_as_the_first_time() {
    let replica = replica();
    run(&replica, settings(1), "CREATE TABLE t (id INT PRIMARY KEY)").await;
    let request = settings(5);
    let first = run(&replica, request.clone(), "INSERT INTO t VALUES (1), (2)").await;
    // The client lost the answer and sends the same request again: same id, same run.
    let again = run(&replica, request, "INSERT INTO t VALUES (1), (2)").await;
    assert_eq!(results(&first), results(&again));
    assert_eq!(results(&again)[0].0, "Insert", "not a duplicate key error");
    let responses = run(&replica, settings(2), "SELECT COUNT(*) FROM t").await;
    assert_eq!(rows(&responses), [[Value::Integer(2)]]);
}

#[tokio::test]
async fn a_short_statement_is_answered_in_one_batch_with_the_session() {
    let replica = replica();
    run(&replica, settings(1), "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await;
    // One batch is one write to the network: columns, row, end and session together.
    let (out, mut batches) = mpsc::channel(16);
    replica
        .run(settings(1), last(b"SELECT id FROM t WHERE id = 1"), tokio_stream::empty(), out)
        .await;
    let batch = batches.try_recv().unwrap();
    assert!(
        matches!(
            batch.as_slice(),
            [
                Response::Columns(_),
                Response::Rows(_),
                Response::QueryEnd { .. },
                Response::Session(None)
            ]
        ),
        "{batch:?}"
    );
    assert!(batches.try_recv().is_err());
    // A script's earlier statements are answered before the later ones run.
    let (out, mut batches) = mpsc::channel(16);
    let script = last(
        b"SELECT id FROM t WHERE id = 1; INSERT INTO t VALUES (2); SELECT id FROM t WHERE id = 2",
    );
    replica.run(settings(1), script, tokio_stream::empty(), out).await;
    let mut sizes = Vec::new();
    while let Ok(batch) = batches.try_recv() {
        sizes.push(batch.len());
    }
    assert_eq!(sizes, [3, 1, 4], "query; insert; query and session");
}

#[tokio::test]
async fn a_read_after_a_write_of_the_same_script_asks_for_a_new_read_index() {
    let replica = replica();
    let fake = &replica.consensus;
    run(&replica, settings(1), "CREATE TABLE t (id INT PRIMARY KEY)").await;
    // All three arrive together, but the second read must come after the write: the write's
    // answer does not promise that this node applied it.
    let before = fake.read_indexes.load(Ordering::SeqCst);
    let script = "SELECT COUNT(*) FROM t; INSERT INTO t VALUES (1); SELECT COUNT(*) FROM t";
    let responses = run(&replica, settings(1), script).await;
    assert_eq!(rows(&responses), [[Value::Integer(0)], [Value::Integer(1)]]);
    assert_eq!(fake.read_indexes.load(Ordering::SeqCst), before + 2);
}

#[tokio::test]
async fn a_read_only_snapshot_records_how_far_the_state_it_saw_had_come() {
    let replica = replica();
    let fake = &replica.consensus;
    run(&replica, settings(1), "CREATE TABLE t (id INT PRIMARY KEY)").await;
    // The applier has applied a write but not yet published its index.
    fake.publish.store(false, Ordering::SeqCst);
    run(&replica, settings(1), "INSERT INTO t VALUES (1)").await;
    let written = fake.machine.lock().unwrap().applied();
    assert!(fake.applied() < written);
    let stale = Settings { consistency: Consistency::Stale, ..settings(2) };
    let responses = run(&replica, stale, "BEGIN READ ONLY").await;
    // The snapshot sees the write, so a node continuing it must first apply the write.
    let Some((txn, proof)) = session(&responses) else {
        panic!("no read-only session: {responses:?}");
    };
    let Transaction::ReadOnly { index, .. } = txn else { panic!("{txn:?}") };
    assert!(index >= written, "recorded {index}, the write is at {written}");
    fake.applied.send_replace(written);
    let carried = Settings { transaction: Some(txn), proof, ..settings(2) };
    let responses = run(&replica, carried, "SELECT COUNT(*) FROM t").await;
    assert_eq!(rows(&responses), [[Value::Integer(1)]]);
}

#[tokio::test]
async fn a_script_cut_off_before_its_end_does_not_run_its_unterminated_statement() {
    let replica = replica();
    run(
        &replica,
        settings(1),
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)",
    )
    .await;
    // The client could not read the rest of its file: "DELETE FROM t WHERE id = 1" arrived
    // as "DELETE FROM t", and the stream ended without the script's end.
    let (out, mut batches) = mpsc::channel(16);
    let input = tokio_stream::iter([Ok(piece(b"DELETE FROM t"))]);
    replica.run(settings(1), piece(b"INSERT INTO t VALUES (3); "), input, out).await;
    let mut responses = Vec::new();
    while let Ok(batch) = batches.try_recv() {
        responses.extend(batch);
    }
    let kinds: Vec<String> = results(&responses).into_iter().map(|(kind, _, _)| kind).collect();
    assert_eq!(kinds, ["Insert", "invalid_request"], "the complete statement ran");
    let responses = run(&replica, settings(2), "SELECT COUNT(*) FROM t").await;
    assert_eq!(rows(&responses), [[Value::Integer(3)]]);
    // Said to be the end, the same text runs.
    run(&replica, settings(1), "DELETE FROM t").await;
    let responses = run(&replica, settings(2), "SELECT COUNT(*) FROM t").await;
    assert_eq!(rows(&responses), [[Value::Integer(0)]]);
}

#[tokio::test]
async fn a_write_returning_rows_sends_them_as_a_query_and_a_retry_gets_them_again() {
    let replica = replica();
    run(&replica, settings(1), "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").await;
    let request = settings(7);
    let sql = "INSERT INTO t VALUES (1, 'a'), (2, 'b') RETURNING id, v";
    let first = run(&replica, request.clone(), sql).await;
    assert!(first.iter().any(|r| matches!(r, Response::Columns(c) if c.len() == 2)));
    assert_eq!(rows(&first), [[Value::Integer(1), text("a")], [Value::Integer(2), text("b")]]);
    let ends = first.iter().find_map(|r| match r {
        Response::QueryEnd { rows, part, .. } => Some((*rows, *part)),
        _ => None,
    });
    assert_eq!(ends, Some((2, 1)), "the rows' count, and the log run the write went in");
    let again = run(&replica, request, sql).await;
    assert_eq!(rows(&again), rows(&first), "a retry is answered with the same rows");

    // Rows too large to keep for a retry: the retry is told the write was applied.
    // The script goes on past it, as it did the first time.
    let big = format!(
        "INSERT INTO t VALUES (3, '{}') RETURNING v; SELECT COUNT(*) FROM t",
        "x".repeat(70_000)
    );
    let request = settings(8);
    let first = run(&replica, request.clone(), &big).await;
    assert_eq!(rows(&first).len(), 2);
    let again = run(&replica, request, &big).await;
    let kinds: Vec<String> = results(&again).into_iter().map(|(kind, ..)| kind).collect();
    assert_eq!(kinds, ["returning_not_kept", "rows 1"]);
    assert_eq!(rows(&again), [[Value::Integer(3)]], "each write applied once");
}
