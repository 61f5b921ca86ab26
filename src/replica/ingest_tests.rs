//! An edge's batches are applied exactly once: overlaps are skipped, gaps and failed inserts
//! change nothing, and the record survives a restart.

use super::*;
use crate::raft::{Configuration, Entry, Payload};
use crate::replica::{Caller, Command};
use crate::sql::parser::ast::Statement;
use crate::sql::types::Value;
use crate::storage::ReplicaStore;

fn apply(machine: &mut StateMachine, index: Index, command: &Command) -> Outcome {
    let entry = Entry { index, term: 1, payload: Payload::Command(command.encode()) };
    let outcome = machine.apply(&entry).unwrap();
    machine.commit().unwrap();
    outcome
}

/// Rows `first..=last` of edge `edge` (incarnation 1) into `table`, each row holding its
/// sequence number.
fn batch(edge: &str, first: u64, last: u64, table: &str) -> Command {
    batch_of(edge, 1, Caller::Anonymous, first, last, table)
}

fn batch_of(
    edge: &str,
    incarnation: u64,
    caller: Caller,
    first: u64,
    last: u64,
    table: &str,
) -> Command {
    Command::Ingest(Box::new(Ingest {
        edge: edge.into(),
        incarnation,
        first,
        tables: vec![(table.into(), vec!["seq".into()])],
        rows: (first..=last).map(|seq| (0, vec![Value::Integer(seq as i64)])).collect(),
        caller,
        limits: crate::sql::budget::Limits::NONE,
        now: 1,
    }))
}

fn sql(sql: &str) -> Command {
    Command::Execute {
        txn: None,
        statements: crate::sql::parser::parse(sql).unwrap(),
        continue_on_error: false,
        request: None,
        limits: crate::sql::budget::Limits::NONE,
        caller: Caller::Anonymous,
        now: 1,
    }
}

fn held(outcome: Outcome) -> Result<u64, String> {
    match outcome {
        Outcome::Ingested { through } => Ok(through),
        Outcome::Executed { results, .. } => Err(results[0].clone().unwrap_err().kind),
        Outcome::Done => Err("done".into()),
    }
}

/// The rows of `t` (a table without a key, so duplicates would show).
fn rows(machine: &StateMachine) -> Vec<i64> {
    let db = super::super::read_database(&machine.database());
    let mut session = db.session();
    let results = session.execute("SELECT seq FROM t ORDER BY seq").unwrap();
    let crate::sql::StatementResult::Query { rows, .. } = &results[0] else { panic!() };
    rows.iter()
        .map(|row| match row[0] {
            Value::Integer(v) => v,
            _ => panic!(),
        })
        .collect()
}

#[test]
fn batches_apply_once_skip_overlaps_and_refuse_gaps_across_a_restart() {
    let store = Arc::new(ReplicaStore::memory());
    let mut machine = StateMachine::open(store.clone(), Configuration::default()).unwrap();
    apply(&mut machine, 1, &sql("CREATE TABLE t (seq INT)"));
    // A table missing upstream fails the batch and records nothing.
    assert_eq!(
        held(apply(&mut machine, 2, &batch("e1", 1, 3, "missing"))),
        Err("unknown_table".into())
    );
    assert_eq!(held(apply(&mut machine, 3, &batch("e1", 1, 3, "t"))), Ok(3));
    // The same batch again, and an overlapping one with a different cut: only 4 and 5 are new.
    assert_eq!(held(apply(&mut machine, 4, &batch("e1", 1, 3, "t"))), Ok(3));
    assert_eq!(held(apply(&mut machine, 5, &batch("e1", 2, 5, "t"))), Ok(5));
    // Another edge has its own numbering.
    assert_eq!(held(apply(&mut machine, 6, &batch("e2", 40, 41, "t"))), Ok(41));
    assert_eq!(rows(&machine), vec![1, 2, 3, 4, 5, 40, 41]);

    // After a restart the record holds: a retry inserts nothing, a gap is refused.
    drop(machine);
    let mut machine = StateMachine::open(store, Configuration::default()).unwrap();
    assert_eq!(held(apply(&mut machine, 7, &batch("e1", 3, 5, "t"))), Ok(5));
    assert_eq!(held(apply(&mut machine, 8, &batch("e1", 7, 8, "t"))), Err("edge_gap".into()));
    assert_eq!(held(apply(&mut machine, 9, &batch("e1", 6, 6, "t"))), Ok(6));
    assert_eq!(rows(&machine), vec![1, 2, 3, 4, 5, 6, 40, 41]);
}

#[test]
fn a_new_incarnation_starts_over_and_another_user_may_not_take_an_edge_over() {
    let mut machine =
        StateMachine::open(Arc::new(ReplicaStore::memory()), Configuration::default()).unwrap();
    use crate::sql::parser::ast::{Credential, UserStatement};
    let hash = crate::replica::access::hash_password("pw").unwrap();
    let mut statements = crate::sql::parser::parse("CREATE TABLE t (seq INT)").unwrap();
    for name in ["ann", "bob"] {
        let credential = Credential::Hash(hash.clone());
        let create = UserStatement::Create { name: name.into(), credential, if_not_exists: false };
        statements.push(Statement::Users(create));
        let grant = UserStatement::Grant { role: "readwrite".into(), user: name.into() };
        statements.push(Statement::Users(grant));
    }
    let Command::Execute { txn, continue_on_error, request, limits, caller, now, .. } = sql("")
    else {
        unreachable!()
    };
    let bootstrap =
        Command::Execute { txn, statements, continue_on_error, request, limits, caller, now };
    let Outcome::Executed { results, .. } = apply(&mut machine, 1, &bootstrap) else { panic!() };
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let ann = || Caller::User("ann".into());
    assert_eq!(held(apply(&mut machine, 2, &batch_of("e1", 1, ann(), 1, 4, "t"))), Ok(4));
    // Another user cannot forward as e1 (the operator could).
    let bob = Caller::User("bob".into());
    assert_eq!(
        held(apply(&mut machine, 3, &batch_of("e1", 1, bob, 5, 5, "t"))),
        Err("permission_denied".into())
    );
    assert_eq!(
        held(apply(&mut machine, 4, &batch_of("e1", 1, Caller::Operator, 5, 5, "t"))),
        Ok(5)
    );
    // Another user cannot reset it with a new incarnation either.
    let bob = Caller::User("bob".into());
    assert_eq!(
        held(apply(&mut machine, 5, &batch_of("e1", 3, bob, 1, 1, "t"))),
        Err("permission_denied".into())
    );
    // A new incarnation must start at 1 (another edge with the same id does not).
    assert_eq!(
        held(apply(&mut machine, 6, &batch_of("e1", 2, ann(), 7, 8, "t"))),
        Err("edge_gap".into())
    );
    // A rebuilt edge numbers from 1 again in a new life: its rows are new, not skipped.
    assert_eq!(held(apply(&mut machine, 7, &batch_of("e1", 2, ann(), 1, 2, "t"))), Ok(2));
    assert_eq!(rows(&machine), vec![1, 1, 2, 2, 3, 4, 5]);
}
