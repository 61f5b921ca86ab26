//! The outbox: rows of forwarded tables enter it at commit, in commit order, and only then.

use super::*;
use crate::sql::Database;
use crate::sql::types::Value;
use std::sync::Arc;

fn forwarding(tables: &[&str]) -> ForwardSettings {
    ForwardSettings {
        edge: "e1".into(),
        incarnation: 7,
        tables: tables.iter().map(|t| t.to_string()).collect(),
    }
}

/// The outbox's (sequence, table, first value) triples.
fn outbox(db: &Database) -> Vec<(u64, String, Value)> {
    let (entries, _) = db.outbox_batch(usize::MAX, usize::MAX).unwrap();
    entries.into_iter().map(|(seq, e)| (seq, e.table, e.row[0].clone())).collect()
}

#[test]
fn committed_rows_of_forwarded_tables_enter_the_outbox_in_commit_order() {
    let db = Arc::new(Database::memory());
    let mut s = db.session();
    s.execute("CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (id INT)").unwrap();
    db.set_forward_settings(&forwarding(&["a", "b", "later"]), false).unwrap();
    // Created after the settings: forwarded too.
    s.execute("CREATE TABLE later (id INT); CREATE TABLE local (id INT)").unwrap();

    // An open transaction's rows wait for its commit, even across a flush and a resume.
    let mut open = db.session();
    open.execute("BEGIN; INSERT INTO a VALUES (10), (1)").unwrap();
    open.flush().unwrap();
    let version = open.transaction().unwrap().mvcc().version();
    // As after a restart: the transaction's rows are known only from the store.
    std::mem::forget(open.into_transaction());
    s.execute("INSERT INTO b VALUES (2), (3); INSERT INTO local VALUES (9)").unwrap();
    assert!(s.execute("INSERT INTO a VALUES (4), (4)").is_err(), "a duplicate key fails");
    s.execute("BEGIN; INSERT INTO later VALUES (5); ROLLBACK").unwrap();
    let mut resumed = db.resume_session(db.resume_transaction(version).unwrap());
    resumed.execute("INSERT INTO a VALUES (6)").unwrap();
    assert!(resumed.execute("INSERT INTO a VALUES (6)").is_err());
    resumed.execute("COMMIT").unwrap();

    let b = |v| ("b".to_string(), Value::Integer(v));
    let a = |v| ("a".to_string(), Value::Integer(v));
    let got: Vec<_> = outbox(&db).into_iter().map(|(seq, t, v)| (seq, (t, v))).collect();
    // The open transaction's rows come in the order it inserted them, not in key order.
    assert_eq!(got, vec![(1, b(2)), (2, b(3)), (3, a(10)), (4, a(1)), (5, a(6))]);
    let status = db.outbox_status().unwrap();
    assert_eq!((status.backlog, status.forwarded), (5, 0));

    db.trim_outbox(3).unwrap();
    assert_eq!(outbox(&db).iter().map(|e| e.0).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(db.outbox_status().unwrap().backlog, 2);
    // An acknowledgement past the end trims only what is there.
    db.trim_outbox(100).unwrap();
    assert_eq!(outbox(&db), vec![]);
    assert_eq!(
        db.outbox_status().unwrap(),
        OutboxStatus { backlog: 0, forwarded: 5, oldest: None }
    );
    s.execute("INSERT INTO later VALUES (7)").unwrap();
    assert_eq!(outbox(&db), vec![(6, "later".to_string(), Value::Integer(7))]);
}

#[test]
fn forwarded_tables_refuse_updates_deletes_and_upserts() {
    let db = Arc::new(Database::memory());
    let mut s = db.session();
    s.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1)").unwrap();
    db.set_forward_settings(&forwarding(&["t"]), false).unwrap();
    for sql in [
        "UPDATE t SET v = 2",
        "DELETE FROM t",
        "INSERT INTO t VALUES (1, 3) ON CONFLICT (id) DO UPDATE SET v = 3",
    ] {
        let error = s.execute(sql).unwrap_err().to_string();
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    // Plain inserts still work, and the table's rows are unchanged.
    s.execute("INSERT INTO t VALUES (2, 2)").unwrap();
    assert_eq!(outbox(&db).len(), 1);
    // It cannot be dropped while its rows wait to be sent.
    let error = s.execute("DROP TABLE t").unwrap_err().to_string();
    assert!(error.contains("still to be forwarded"), "{error}");
    // Forwarding stopped: the table takes updates again, and new rows stay local.
    db.set_forward_settings(&forwarding(&[]), false).unwrap();
    s.execute("UPDATE t SET v = 5; INSERT INTO t VALUES (3, 3)").unwrap();
    assert_eq!(outbox(&db).len(), 1);
    // Its waiting row still holds it, until the upstream has it.
    assert!(s.execute("DROP TABLE t").is_err());
    db.trim_outbox(1).unwrap();
    s.execute("DROP TABLE t").unwrap();
    // Nor can a transaction drop a table it inserted forwarded rows into, before or after a
    // flush: the rows would reach the outbox at its commit with no table.
    db.set_forward_settings(&forwarding(&["t"]), false).unwrap();
    s.execute("CREATE TABLE t (id INT)").unwrap();
    for flush in [false, true] {
        s.execute("BEGIN; INSERT INTO t VALUES (1)").unwrap();
        if flush {
            s.flush().unwrap();
        }
        let error = s.execute("DROP TABLE t").unwrap_err().to_string();
        assert!(error.contains("still to be forwarded"), "flush {flush}: {error}");
        assert!(error.contains("a later transaction"), "flush {flush}: {error}");
        s.execute("ROLLBACK").unwrap();
    }
    s.execute("DROP TABLE t").unwrap();
}

#[test]
fn an_edge_keeps_its_id_against_a_candidate_and_a_restore_starts_a_new_life() {
    let db = Arc::new(Database::memory());
    db.set_forward_settings(&forwarding(&["t"]), true).unwrap();
    // A second leader's random candidate does not replace the id and incarnation set.
    let candidate =
        ForwardSettings { edge: "other".into(), incarnation: 9, ..forwarding(&["t", "u"]) };
    db.set_forward_settings(&candidate, true).unwrap();
    let settings = db.forward_settings().unwrap().unwrap();
    assert_eq!((settings.edge.as_str(), settings.incarnation, settings.tables.len()), ("e1", 7, 2));
    // An id given explicitly replaces it, with the new incarnation.
    db.set_forward_settings(&candidate, false).unwrap();
    assert_eq!(db.forward_settings().unwrap().unwrap().incarnation, 9);

    // After a restore the counters come from the entries: new rows number after them.
    let mut s = db.session();
    s.execute("CREATE TABLE t (id INT); INSERT INTO t VALUES (1), (2), (3)").unwrap();
    db.trim_outbox(1).unwrap();
    db.restart_outbox(11).unwrap();
    assert_eq!(db.forward_settings().unwrap().unwrap().incarnation, 11);
    s.execute("INSERT INTO t VALUES (4)").unwrap();
    // The new life numbers from 1: the restored rows 2 and 3 become 1 and 2, in order.
    let got: Vec<(u64, Value)> = outbox(&db).into_iter().map(|(seq, _, v)| (seq, v)).collect();
    let want: Vec<(u64, Value)> = (1..=3).map(|n| (n, Value::Integer(n as i64 + 1))).collect();
    assert_eq!(got, want);
    assert_eq!(db.outbox_status().unwrap().backlog, 3);
    // Where each table's rows are is renumbered too: t waits until its last row is sent.
    s.execute("CREATE TABLE u (id INT); INSERT INTO u VALUES (9)").unwrap();
    db.trim_outbox(3).unwrap();
    assert!(db.outbox_holds("u").unwrap() && !db.outbox_holds("t").unwrap());
    s.execute("DROP TABLE t").unwrap();
    assert!(s.execute("DROP TABLE u").is_err());
    // Another restore: u's row, 4, becomes 1, and once 1 is sent nothing of u waits.
    db.restart_outbox(12).unwrap();
    assert!(db.outbox_holds("u").unwrap());
    db.trim_outbox(1).unwrap();
    assert!(!db.outbox_holds("u").unwrap());
    s.execute("DROP TABLE u").unwrap();
}

#[test]
fn a_transaction_inserts_at_most_the_write_limit_into_forwarded_tables_even_across_a_resume() {
    let db = Arc::new(Database::memory());
    let limits = crate::sql::budget::Limits { write_bytes: 1_000, hold_bytes: 1 << 20 };
    let mut s = db.session();
    s.execute("CREATE TABLE t (id INT, v TEXT); CREATE TABLE local (id INT, v TEXT)").unwrap();
    db.set_forward_settings(&forwarding(&["t"]), false).unwrap();
    let row = |id: i64| format!("INSERT INTO t VALUES ({id}, '{}')", "x".repeat(400));
    let small = |id: i64| format!("INSERT INTO t VALUES ({id}, 'y')");

    for resume in [false, true] {
        // Each statement is within the limit of one statement; the transaction's sum is not.
        let mut open = db.session();
        open.set_limits(limits);
        open.execute("BEGIN").unwrap();
        open.execute(&row(1)).unwrap();
        open.execute(&row(2)).unwrap();
        if resume {
            // As after a restart: the bytes already pending are known only from the store.
            open.flush().unwrap();
            let version = open.transaction().unwrap().mvcc().version();
            std::mem::forget(open.into_transaction());
            open = db.resume_session(db.resume_transaction(version).unwrap());
            open.set_limits(limits);
        }
        let error = open.execute(&row(3)).unwrap_err().to_string();
        assert!(error.contains("forwarded tables"), "resume {resume}: {error}");
        // The failed statement's row is not counted, nor are local rows: a small row fits.
        open.execute(&row(3).replace("INTO t", "INTO local")).unwrap();
        open.execute(&small(4)).unwrap();
        open.execute("COMMIT").unwrap();
    }
    let ids: Vec<Value> = outbox(&db).into_iter().map(|(_, _, id)| id).collect();
    let want: Vec<Value> = [1, 2, 4, 1, 2, 4].into_iter().map(Value::Integer).collect();
    assert_eq!(ids, want);
    // A new transaction starts from nothing.
    s.set_limits(limits);
    s.execute(&row(5)).unwrap();
    assert_eq!(outbox(&db).len(), 7);
}

#[test]
fn a_rolled_back_transaction_leaves_no_count_of_forwarded_rows_behind() {
    let db = Arc::new(Database::memory());
    let mut s = db.session();
    s.execute("CREATE TABLE t (id INT)").unwrap();
    db.set_forward_settings(&forwarding(&["t"]), false).unwrap();
    let counter = |version| {
        let txn = db.mvcc().begin().unwrap();
        txn.get_unversioned(&pending_next_key(version)).unwrap()
    };
    for resume in [false, true] {
        let mut open = db.session();
        open.execute("BEGIN; INSERT INTO t VALUES (1)").unwrap();
        open.flush().unwrap();
        let version = open.transaction().unwrap().mvcc().version();
        assert!(counter(version).is_some(), "a flushed transaction keeps its count");
        if resume {
            std::mem::forget(open.into_transaction());
            open = db.resume_session(db.resume_transaction(version).unwrap());
        }
        open.execute("INSERT INTO t VALUES (2)").unwrap();
        open.execute("ROLLBACK").unwrap();
        assert_eq!(counter(version), None, "resume {resume}");
    }
    assert_eq!(outbox(&db), vec![]);
}
