//! State machine tests: determinism across replicas, snapshots, transactions across entries.

use super::*;
use crate::raft::Term;
use crate::replica::{Caller, RequestId};
use crate::sql::StatementResult;
use crate::sql::types::Value;

fn execute(txn: Option<Version>, sql: &str) -> Command {
    let statements = crate::sql::parser::parse(sql).unwrap();
    Command::Execute {
        txn,
        statements,
        continue_on_error: false,
        request: None,
        limits: crate::sql::budget::Limits::NONE,
        caller: Caller::Anonymous,
        now: 0,
    }
}

/// [`execute`] as proposed by a node whose clock reads `now`.
fn at(sql: &str, now: i64) -> Command {
    match execute(None, sql) {
        Command::Execute {
            txn, statements, continue_on_error, request, limits, caller, ..
        } => Command::Execute { txn, statements, continue_on_error, request, limits, caller, now },
        other => other,
    }
}

/// A timestamp literal's microseconds.
fn t(text: &str) -> i64 {
    crate::sql::types::time::parse(text).unwrap()
}

fn entry(index: Index, command: &Command) -> Entry {
    Entry { index, term: 1 as Term, payload: Payload::Command(command.encode()) }
}

fn machine() -> StateMachine {
    StateMachine::open(Arc::new(ReplicaStore::memory()), Configuration::default()).unwrap()
}

/// A copy of a machine's state made through a view, read in small chunks as a follower
/// receives it.
fn copy_through_view(machine: &mut StateMachine) -> Arc<ReplicaStore> {
    let (meta, view) = machine.snapshot().unwrap();
    let copy = Arc::new(ReplicaStore::memory());
    let mut last: Option<Vec<u8>> = None;
    loop {
        let pairs = view.read(last.as_deref(), 64).unwrap();
        let Some((key, _)) = pairs.last() else { break };
        last = Some(key.clone());
        let mut batch = WriteBatch::new();
        for (key, value) in pairs {
            batch.set(key, value);
        }
        copy.base().write(batch).unwrap();
    }
    assert_eq!(Meta::load(copy.as_ref()).unwrap().map(|m| m.applied), Some(meta.index));
    copy
}

/// Every stored pair of the current database.
fn dump(machine: &StateMachine) -> Vec<crate::storage::KeyValue> {
    let db = read_database(&machine.database());
    db.mvcc()
        .engine()
        .scan((std::ops::Bound::Unbounded, std::ops::Bound::Unbounded))
        .collect::<crate::storage::Result<_>>()
        .unwrap()
}

fn results(outcome: Outcome) -> (Vec<Result<StatementResult, String>>, Option<Version>) {
    match outcome {
        Outcome::Executed { results, txn } => {
            (results.into_iter().map(|r| r.map_err(|e| e.kind)).collect(), txn)
        }
        Outcome::Done | Outcome::Ingested { .. } => (Vec::new(), None),
    }
}

/// A workload touching every command: DDL, autocommit writes, an interactive transaction that
/// begins without writing, a conflict, an abort, a collection and an address.
fn workload() -> Vec<Command> {
    vec![
        execute(
            None,
            "CREATE TABLE t (id INT PRIMARY KEY, v STRING UNIQUE); CREATE TABLE h (x INT)",
        ),
        execute(None, "INSERT INTO t VALUES (1, 'a'), (2, 'b'); INSERT INTO h VALUES (1), (2)"),
        // Transaction 5 (BEGIN only), then writes in a later entry.
        execute(None, "BEGIN"),
        execute(Some(5), "UPDATE t SET v = 'z' WHERE id = 1"),
        // A concurrent autocommit write of the same row conflicts.
        execute(None, "UPDATE t SET v = 'y' WHERE id = 1"),
        // The counter moves without any batch: a transaction that writes nothing.
        execute(None, "UPDATE t SET v = 'q' WHERE id = 99"),
        execute(None, "BEGIN; INSERT INTO h VALUES (3)"),
        Command::Abort { txns: vec![8] },
        execute(Some(8), "COMMIT"),
        execute(Some(5), "INSERT INTO t VALUES (3, 'b')"),
        execute(Some(5), "COMMIT"),
        Command::Collect { horizon: 100 },
        Command::SetAddress { id: 4, address: "127.0.0.1:7004".into() },
        execute(None, "INSERT INTO t VALUES (4, 'd'); DELETE FROM h WHERE x = 1"),
    ]
}

#[test]
fn replicas_applying_the_same_log_are_byte_identical() {
    let (mut a, mut b) = (machine(), machine());
    for (i, command) in workload().iter().enumerate() {
        let entry = entry(i as Index + 1, command);
        assert_eq!(a.apply(&entry).unwrap(), b.apply(&entry).unwrap(), "outcome of {command:?}");
        a.commit().unwrap();
        b.commit().unwrap();
        assert_eq!(dump(&a), dump(&b), "state after {command:?}");
    }
    assert_eq!(a.addresses(), b.addresses());
    assert_eq!(a.applied(), 14);
}

#[test]
fn outcomes_report_results_errors_and_the_open_transaction() {
    let mut m = machine();
    let mut outcomes = Vec::new();
    for (i, command) in workload().iter().enumerate() {
        outcomes.push(results(m.apply(&entry(i as Index + 1, command)).unwrap()));
    }
    assert_eq!(
        outcomes[2],
        (vec![Ok(StatementResult::Begin { version: 5, read_only: false })], Some(5))
    );
    assert_eq!(outcomes[3], (vec![Ok(StatementResult::Update { count: 1 })], Some(5)));
    assert_eq!(outcomes[4].0, vec![Err("serialization_failure".to_string())]);
    // The aborted transaction is gone: its COMMIT fails and its row never appears.
    assert_eq!(outcomes[8], (vec![Err("transaction_state".to_string())], None));
    // A unique violation fails the statement; the transaction stays open.
    assert_eq!(outcomes[9], (vec![Err("unique_violation".to_string())], Some(5)));
    assert_eq!(outcomes[10], (vec![Ok(StatementResult::Commit { version: 5 })], None));
    let db = read_database(&m.database());
    let rows =
        db.session().execute("SELECT * FROM t ORDER BY id; SELECT x FROM h ORDER BY x").unwrap();
    let StatementResult::Query { rows: t, .. } = &rows[0] else { panic!() };
    let StatementResult::Query { rows: h, .. } = &rows[1] else { panic!() };
    let text = |rows: &Vec<crate::sql::types::Row>| -> Vec<String> {
        rows.iter().map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")).collect()
    };
    assert_eq!(text(t), vec!["1,z", "2,b", "4,d"]);
    assert_eq!(text(h), vec!["2"], "the aborted insert of 3 never lands; 1 was deleted");
}

#[test]
fn a_view_at_any_index_installs_to_the_same_state() {
    let commands = workload();
    let mut reference = machine();
    for (i, command) in commands.iter().enumerate() {
        reference.apply(&entry(i as Index + 1, command)).unwrap();
    }
    reference.commit().unwrap();
    for cut in 0..commands.len() {
        let mut first = machine();
        for (i, command) in commands[..cut].iter().enumerate() {
            first.apply(&entry(i as Index + 1, command)).unwrap();
        }
        let copy = copy_through_view(&mut first);
        let mut second = machine();
        second.switch(copy).unwrap();
        assert_eq!(second.applied(), cut as Index);
        for (i, command) in commands.iter().enumerate().skip(cut) {
            let entry = entry(i as Index + 1, command);
            assert_eq!(second.apply(&entry).unwrap(), first.apply(&entry).unwrap(), "cut {cut}");
        }
        second.commit().unwrap();
        assert_eq!(dump(&second), dump(&reference), "installed at {cut}");
        assert_eq!(second.addresses(), reference.addresses());
    }
}

/// Issue 12, item 7: the state is durable. A store reopened after a commit resumes at the
/// committed index with its data; what was applied but not committed is not there (the log
/// replays it), so nothing is applied twice.
#[test]
fn a_reopened_store_resumes_at_its_committed_index() {
    let store = Arc::new(ReplicaStore::memory());
    let mut m = StateMachine::open(store.clone(), Configuration::voters([1])).unwrap();
    let commands = workload();
    for (i, command) in commands[..6].iter().enumerate() {
        m.apply(&entry(i as Index + 1, command)).unwrap();
    }
    m.commit().unwrap();
    let committed = dump(&m);
    m.apply(&entry(7, &commands[6])).unwrap();
    drop(m);
    // A crash loses the overlay: only the base survives.
    let base = Arc::new(ReplicaStore::new(
        store.base().clone(),
        Box::new(|| {
            Ok((
                Arc::new(crate::storage::MemoryEngine::new()) as Arc<dyn Engine>,
                Box::new(|| {}) as _,
            ))
        }),
    ));
    let mut reopened = StateMachine::open(base, Configuration::voters([9])).unwrap();
    assert_eq!(reopened.applied(), 6);
    assert_eq!(
        reopened.meta().config,
        Configuration::voters([1]),
        "the recorded configuration wins"
    );
    assert_eq!(dump(&reopened), committed);
    // Replaying the rest of the log gives what an uninterrupted replica has.
    let mut uninterrupted =
        StateMachine::open(Arc::new(ReplicaStore::memory()), Configuration::voters([1])).unwrap();
    for (i, command) in commands.iter().enumerate() {
        uninterrupted.apply(&entry(i as Index + 1, command)).unwrap();
    }
    for (i, command) in commands.iter().enumerate().skip(6) {
        reopened.apply(&entry(i as Index + 1, command)).unwrap();
    }
    assert!(reopened.apply(&entry(3, &commands[2])).is_err(), "an entry already applied");
    reopened.commit().unwrap();
    uninterrupted.commit().unwrap();
    assert_eq!(dump(&reopened), dump(&uninterrupted));
}

#[test]
fn read_only_transactions_and_bad_commands_are_deterministic_errors() {
    let mut m = machine();
    let (outcome, txn) = results(m.apply(&entry(1, &execute(None, "BEGIN READ ONLY"))).unwrap());
    assert_eq!((outcome, txn), (vec![Err("invalid_statement".to_string())], None));
    let garbage = Entry { index: 2, term: 1, payload: Payload::Command(vec![0xff, 0xff, 0xff]) };
    assert_eq!(results(m.apply(&garbage).unwrap()).0, vec![Err("invalid_command".to_string())]);
    assert_eq!(
        m.apply(&Entry { index: 3, term: 1, payload: Payload::Noop }).unwrap(),
        Outcome::Done
    );
    assert_eq!(m.applied(), 3);
}

/// Issue 12, item 1, through the log: B's snapshot keeps its value of row 1 after a collection
/// at any horizon, its UPDATE conflicts with A, and its COMMIT does not hide a lost update.
#[test]
fn a_collection_never_removes_what_a_live_transactions_snapshot_reads() {
    let mut m = machine();
    let mut index = 0;
    let mut apply = |m: &mut StateMachine, command: Command| {
        index += 1;
        results(m.apply(&entry(index, &command)).unwrap())
    };
    apply(&mut m, execute(None, "CREATE TABLE t (id INT PRIMARY KEY, v STRING)"));
    apply(&mut m, execute(None, "INSERT INTO t VALUES (1, 'before')"));
    let (_, a) = apply(&mut m, execute(None, "BEGIN; UPDATE t SET v = 'after' WHERE id = 1"));
    let (_, b) = apply(&mut m, execute(None, "BEGIN"));
    apply(&mut m, execute(a, "COMMIT"));
    apply(&mut m, Command::Collect { horizon: Version::MAX });
    // B reads through a view, as a replica serves a transaction's queries.
    let db = read_database(&m.database());
    let view = db.view_transaction(b.unwrap()).unwrap();
    let rows = db.resume_session(view).execute("SELECT v FROM t WHERE id = 1").unwrap();
    match &rows[0] {
        StatementResult::Query { rows, .. } => {
            assert_eq!(rows, &vec![vec![crate::sql::types::Value::String("before".into())]])
        }
        other => panic!("expected rows, got {other:?}"),
    }
    let (update, _) = apply(&mut m, execute(b, "UPDATE t SET v = 'mine' WHERE id = 1"));
    assert_eq!(update, vec![Err("serialization_failure".to_string())]);
}

/// Two replicas applying the same log, checked to agree on every outcome.
struct Replicas {
    a: StateMachine,
    b: StateMachine,
    index: Index,
}

impl Replicas {
    fn new() -> Self {
        Self { a: machine(), b: machine(), index: 0 }
    }

    /// Applies the next entry on both; their outcomes must be equal.
    fn apply(&mut self, command: Command) -> Outcome {
        self.index += 1;
        let entry = entry(self.index, &command);
        let outcome = self.a.apply(&entry).unwrap();
        assert_eq!(self.b.apply(&entry).unwrap(), outcome, "replicas agree");
        outcome
    }

    /// Commits both and checks they store the same bytes.
    fn commit_and_compare(&mut self) {
        self.a.commit().unwrap();
        self.b.commit().unwrap();
        assert_eq!(dump(&self.a), dump(&self.b));
    }
}

fn with_id(command: Command, client: u64, sequence: u64, part: u64) -> Command {
    match command {
        Command::Execute { txn, statements, continue_on_error, limits, caller, now, .. } => {
            Command::Execute {
                txn,
                statements,
                continue_on_error,
                request: Some(RequestId { client, sequence, part }),
                limits,
                caller,
                now,
            }
        }
        other => other,
    }
}

/// Issue 12, item 6: a command carrying a request id is applied at most once; a retry gets
/// the first outcome back, on every replica alike.
#[test]
fn a_retried_request_gets_its_first_outcome_and_applies_once() {
    let mut pair = Replicas::new();
    let mut apply = |command: Command| results(pair.apply(command));
    apply(execute(None, "CREATE TABLE t (id INT PRIMARY KEY)"));
    let insert = with_id(execute(None, "INSERT INTO t VALUES (1)"), 7, 1, 1);
    let first = apply(insert.clone());
    assert_eq!(first.0, vec![Ok(StatementResult::Insert { count: 1 })]);
    // The same id again: the same outcome, not a unique violation.
    assert_eq!(apply(insert), first);
    // An older part of the client's requests: applied before, result no longer kept.
    let older = apply(with_id(execute(None, "INSERT INTO t VALUES (2)"), 7, 0, 9));
    assert_eq!(older.0, vec![Err("duplicate_request".to_string())]);
    // A new request of the same client runs.
    let next = apply(with_id(execute(None, "INSERT INTO t VALUES (3)"), 7, 2, 1));
    assert_eq!(next.0, vec![Ok(StatementResult::Insert { count: 1 })]);
    pair.commit_and_compare();
    let db = read_database(&pair.a.database());
    let rows = db.session().execute("SELECT COUNT(*) FROM t").unwrap();
    let StatementResult::Query { rows, .. } = &rows[0] else { panic!("{rows:?}") };
    assert_eq!(rows[0][0], crate::sql::types::Value::Integer(2));
}

/// The table of clients is bounded: the least recently active client is forgotten, the same
/// one on every replica, and the table survives a reopen.
#[test]
fn the_least_recently_active_client_is_forgotten_first() {
    let store = Arc::new(ReplicaStore::memory());
    let mut m = StateMachine::open(store.clone(), Configuration::default()).unwrap();
    let nothing = |client: u64| with_id(execute(None, "SELECT 1"), client, 1, 1);
    let mut index = 0;
    for client in 1..=MAX_CLIENTS as u64 {
        index += 1;
        m.apply(&entry(index, &nothing(client))).unwrap();
    }
    // Client 1 becomes the most recent; a new client pushes out client 2, the least recent.
    index += 1;
    m.apply(&entry(index, &with_id(execute(None, "SELECT 1"), 1, 2, 1))).unwrap();
    index += 1;
    m.apply(&entry(index, &nothing(u64::MAX))).unwrap();
    m.commit().unwrap();
    let reopened = StateMachine::open(store, Configuration::default()).unwrap();
    assert!(reopened.clients.contains_key(&1));
    assert!(!reopened.clients.contains_key(&2), "the least recently active client is gone");
    assert!(reopened.clients.contains_key(&3) && reopened.clients.contains_key(&u64::MAX));
    assert_eq!(reopened.clients.len(), MAX_CLIENTS);
}

/// Issue 12, item 10: a statement that would write or hold more than its limits fails with
/// the same error on every replica, at once, instead of exhausting their memory (and again at
/// each restart).
#[test]
fn a_statement_past_its_limits_fails_the_same_way_everywhere() {
    let limits = crate::sql::budget::Limits { write_bytes: 2 << 20, hold_bytes: 2 << 20 };
    let limited = |sql: &str| match execute(None, sql) {
        Command::Execute { txn, statements, continue_on_error, request, caller, now, .. } => {
            Command::Execute { txn, statements, continue_on_error, request, limits, caller, now }
        }
        other => other,
    };
    let mut pair = Replicas::new();
    let mut apply = |command: Command| results(pair.apply(command)).0;
    apply(limited("CREATE TABLE a (x INT); CREATE TABLE b (x INT, y INT)"));
    let values: Vec<String> = (0..20_000).map(|i| format!("({i})")).collect();
    apply(limited(&format!("INSERT INTO a VALUES {}", values.join(", "))));
    let started = std::time::Instant::now();
    let crossed = apply(limited("INSERT INTO b SELECT l.x, r.x FROM a l CROSS JOIN a r"));
    assert_eq!(crossed, vec![Err("resource_limit".to_string())]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "it stopped early");
    let sorted = apply(limited("SELECT l.x FROM a l CROSS JOIN a r ORDER BY l.x"));
    assert_eq!(sorted, vec![Err("resource_limit".to_string())]);
    // Nothing of the failed statement was written; the next statement works.
    assert_eq!(apply(limited("INSERT INTO b VALUES (1, 2)")).len(), 1);
    pair.commit_and_compare();
}

/// Privileges are checked as each entry is applied, against the users applied before it: the
/// same outcome on every replica, whatever the serving node knew when it accepted the request.
#[test]
fn every_replica_checks_the_callers_privileges_against_the_users_it_has_applied() {
    use crate::sql::parser::ast::{Credential, Statement, UserStatement};
    let as_caller = |sql: &str, caller: Caller| match execute(None, sql) {
        Command::Execute { txn, statements, continue_on_error, request, limits, now, .. } => {
            Command::Execute { txn, statements, continue_on_error, request, limits, caller, now }
        }
        other => other,
    };
    let hash = crate::replica::access::hash_password("pw").unwrap();
    let user = |name: &str| {
        Statement::Users(UserStatement::Create {
            name: name.into(),
            credential: Credential::Hash(hash.clone()),
            if_not_exists: false,
        })
    };
    let grant = |role: &str, name: &str| {
        Statement::Users(UserStatement::Grant { role: role.into(), user: name.into() })
    };
    // One anonymous entry makes the first users and grants their roles: decided as it starts.
    let bootstrap = Command::Execute {
        txn: None,
        statements: vec![
            user("root"),
            grant("admin", "root"),
            user("viewer"),
            grant("readonly", "viewer"),
        ],
        continue_on_error: false,
        request: None,
        limits: crate::sql::budget::Limits::NONE,
        caller: Caller::Anonymous,
        now: 0,
    };
    let user_caller = |name: &str| Caller::User(name.into());
    let commands = [
        bootstrap,
        as_caller("CREATE TABLE t (id INT PRIMARY KEY)", user_caller("root")),
        // Anonymous now: refused. A readonly user's INSERT: refused. A dropped user: refused.
        as_caller("INSERT INTO t VALUES (1)", Caller::Anonymous),
        as_caller("INSERT INTO t VALUES (2)", user_caller("viewer")),
        as_caller("INSERT INTO t VALUES (3)", user_caller("nobody")),
        as_caller("INSERT INTO t VALUES (4)", Caller::Operator),
    ];
    let mut pair = Replicas::new();
    let outcomes: Vec<_> =
        commands.into_iter().map(|command| results(pair.apply(command)).0).collect();
    assert!(outcomes[0].iter().all(Result::is_ok), "{:?}", outcomes[0]);
    assert!(outcomes[1][0].is_ok());
    assert_eq!(outcomes[2], vec![Err("unauthenticated".to_string())]);
    assert_eq!(outcomes[3], vec![Err("permission_denied".to_string())]);
    assert_eq!(outcomes[4], vec![Err("unauthenticated".to_string())]);
    assert!(outcomes[5][0].is_ok());
    pair.commit_and_compare();
}

/// Issue 17: `now()` is the log clock, the same on every replica at the same entry, however
/// late a replica applies it; it never goes back when a command carries an earlier time (a
/// node with a slow clock proposed it), and each entry's is distinct.
#[test]
fn now_is_the_log_clock_on_every_replica_and_never_goes_back() {
    let mut pair = Replicas::new();
    pair.apply(at(
        "CREATE TABLE e (id INT PRIMARY KEY, at TIMESTAMP DEFAULT now(), n TIMESTAMP)",
        0,
    ));
    pair.apply(at("INSERT INTO e (id, n) VALUES (1, now())", t("2026-03-01 10:00:00")));
    // A node whose clock is an hour behind proposes next: the log clock stays where it was.
    pair.apply(at("INSERT INTO e (id, n) VALUES (2, CURRENT_TIMESTAMP)", t("2026-03-01 09:00:00")));
    pair.apply(at("INSERT INTO e (id, n) VALUES (3, now())", t("2026-03-01 10:00:05")));
    let (rows, _) = results(pair.apply(at("SELECT id, at, n FROM e ORDER BY id", 0)));
    let Ok(StatementResult::Query { rows, .. }) = &rows[0] else { panic!("{rows:?}") };
    let stamp = |text: &str| Value::Timestamp(t(text));
    assert_eq!(
        rows,
        &vec![
            vec![Value::Integer(1), stamp("2026-03-01 10:00:00"), stamp("2026-03-01 10:00:00")],
            // A microsecond past the entry before: each entry's time is distinct.
            vec![
                Value::Integer(2),
                stamp("2026-03-01 10:00:00.000001"),
                stamp("2026-03-01 10:00:00.000001"),
            ],
            vec![Value::Integer(3), stamp("2026-03-01 10:00:05"), stamp("2026-03-01 10:00:05")],
        ]
    );
    // The SELECT's entry carried no time (0): a microsecond past the INSERT's.
    assert_eq!(pair.a.meta().clock, t("2026-03-01 10:00:05") + 1);
    pair.commit_and_compare();
}

/// Issue 17: the leader's expiry entries delete expired rows, the same ones on every replica,
/// at most `limit` per entry, and leave the rows still live.
#[test]
fn expiry_deletes_the_same_expired_rows_on_every_replica_in_bounded_batches() {
    let now = t("2026-03-01 12:00:00");
    let mut pair = Replicas::new();
    pair.apply(at(
        "CREATE TABLE m (id INT PRIMARY KEY, ts TIMESTAMP NOT NULL) WITH (ttl = '1 day', ttl_column = ts)",
        now,
    ));
    // 600 rows an hour apart, back from now: the 576 older than a day have expired.
    let values: Vec<String> = (0..600)
        .map(|i| format!("({i}, now() - INTERVAL '{i} hours' - INTERVAL '1 minute')"))
        .collect();
    pair.apply(at(&format!("INSERT INTO m VALUES {}", values.join(", ")), now));
    let mut batches = Vec::new();
    loop {
        let (results, _) = results(pair.apply(Command::Expire { now, limit: 256 }));
        let Ok(StatementResult::Delete { count }) = results[0] else { panic!("{results:?}") };
        batches.push(count);
        if count < 256 {
            break;
        }
    }
    assert_eq!(batches, vec![256, 256, 64]);
    let (rows, _) = results(pair.apply(at("SELECT count(*), min(id), max(id) FROM m", now)));
    let Ok(StatementResult::Query { rows, .. }) = &rows[0] else { panic!("{rows:?}") };
    assert_eq!(rows, &vec![vec![Value::Integer(24), Value::Integer(0), Value::Integer(23)]]);
    pair.commit_and_compare();
}
